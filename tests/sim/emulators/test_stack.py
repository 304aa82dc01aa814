"""The whole twin on the wire: NUT (real upsd) + Redfish + SNMP + Modbus, commands close the loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from drivers.peers import need_nut
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.metrics import METRICS
from wattwise.model.values import Action, ActionKind
from wattwise.sim.driver import TwinDriver
from wattwise.sim.emulators.stack import Endpoints, start_endpoints
from wattwise.sim.twin import Twin

# 16 servers in 4 racks: PSU-fed servers behind PDUs, and racklet racks (DC bus, cooling module).
SITE = generate_site(SiteSpec(servers=16, servers_per_rack=4, racks_per_hall=4, racklet_racks_per_hall=1, seed=1))


@pytest.fixture
async def wire() -> AsyncIterator[tuple[Twin, Endpoints]]:
    need_nut()
    twin = Twin(SITE, seed=0)
    endpoints = await start_endpoints(TwinDriver(twin), SITE)  # the read cache is dropped on every apply
    try:
        yield twin, endpoints
    finally:
        await endpoints.stop()


def _values(readings: list) -> dict[tuple[str, str], float]:  # type: ignore[type-arg]
    return {(r.device_id, r.metric): r.value for r in readings if not r.tags}


async def test_every_protocol_serves_the_twin(wire: tuple[Twin, Endpoints]) -> None:
    twin, endpoints = wire
    assert {e.protocol for e in endpoints.endpoints} == {"nut", "redfish", "snmp", "modbus"}
    wire_readings = await endpoints.driver().read()
    assert all(r.metric in METRICS for r in wire_readings)
    direct = _values(twin.readings())
    over = _values(wire_readings)
    ups = SITE.ups[0].id
    assert over[(ups, "battery_charge_frac")] == pytest.approx(direct[(ups, "battery_charge_frac")], abs=0.01)
    assert over[(ups, "output_power_w")] == pytest.approx(direct[(ups, "output_power_w")], abs=1.0)
    outlet = SITE.pdus[0].outlets[0].id
    assert over[(outlet, "outlet_on")] == direct[(outlet, "outlet_on")]
    server = next(s for s in SITE.servers if s.psus)
    assert over[(server.id, "power_cap_w")] == pytest.approx(direct[(server.id, "power_cap_w")])
    racklet = SITE.racklets[0]
    psu = racklet.power.psus[0].id
    assert over[(psu, "output_power_w")] == pytest.approx(direct[(psu, "output_power_w")], abs=1.0)


async def test_outlet_off_psu_setpoint_and_power_limit_over_the_wire(wire: tuple[Twin, Endpoints]) -> None:
    twin, endpoints = wire
    wire_driver = endpoints.driver()
    outlet = SITE.pdus[0].outlets[0].id
    server = next(s for s in SITE.servers if s.psus)
    racklet_psu = SITE.racklets[0].power.psus[0].id
    actions = [
        Action(kind=ActionKind.OUTLET_OFF, target_id=outlet, reason="test"),  # SNMP SET
        Action(kind=ActionKind.POWER_CAP, target_id=server.id, value=0.6 * server.peak_w),  # Redfish PATCH
        Action(kind=ActionKind.PSU_SETPOINT, target_id=server.psus[0].id, value=150.0),  # Redfish PATCH
        Action(kind=ActionKind.PSU_SETPOINT, target_id=racklet_psu, value=1200.0),  # Modbus write
    ]
    for action in actions:
        result = await wire_driver.apply(action)
        assert result.ok, (action.kind, action.target_id, result.message)
    direct = _values(twin.readings())
    assert direct[(outlet, "outlet_on")] == 0.0
    assert direct[(server.id, "power_cap_w")] == pytest.approx(0.6 * server.peak_w)
    assert direct[(server.psus[0].id, "setpoint_w")] == 150.0
    assert direct[(racklet_psu, "setpoint_w")] == 1200.0
    over = _values(await wire_driver.read())
    assert over[(outlet, "outlet_on")] == 0.0
    assert over[(server.id, "power_cap_w")] == pytest.approx(0.6 * server.peak_w)
    assert over[(server.psus[0].id, "setpoint_w")] == 150.0
    assert over[(racklet_psu, "setpoint_w")] == 1200.0


async def test_nut_epdu_outlet_off_through_upsd() -> None:
    need_nut()
    twin = Twin(SITE, seed=0)
    endpoints = await start_endpoints(TwinDriver(twin), SITE, protocols=("nut",), pdu_protocol="nut", cache_s=0.0)
    try:
        outlet = SITE.pdus[0].outlets[1].id
        assert (await endpoints.driver().apply(Action(kind=ActionKind.OUTLET_OFF, target_id=outlet))).ok
        assert _values(twin.readings())[(outlet, "outlet_on")] == 0.0
        assert _values(await endpoints.driver().read())[(outlet, "outlet_on")] == 0.0
    finally:
        await endpoints.stop()
