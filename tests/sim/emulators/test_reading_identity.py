"""Twin-backed Redfish and Modbus emulators: no two readings of one poll share (device, metric, t_s).

Each poll through the wire is also validated against the site's device ids: every reading the
drivers produce from the twin is accepted (no duplicate, no unknown device).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest

from wattwise.drivers.base import Driver
from wattwise.drivers.modbus import ModbusRackletDriver
from wattwise.drivers.redfish import RedfishDriver
from wattwise.drivers.redfish_client import RedfishEndpoint
from wattwise.drivers.retry import RetryPolicy
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.values import Reading
from wattwise.sim.driver import TwinDriver
from wattwise.sim.emulators.redfish import RedfishEmulator
from wattwise.sim.emulators.redfish_resources import RedfishDeviceSpec
from wattwise.sim.emulators.stack import racklet_emulator
from wattwise.sim.twin import Twin
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.validate import ReadingValidator, RejectReason, site_device_ids

SITE = generate_site(SiteSpec(servers=8, servers_per_rack=4, racks_per_hall=2, racklet_racks_per_hall=1, seed=3))
FAST = RetryPolicy(timeout_s=2.0, attempts=2, backoff_s=0.01)


def repeated_keys(readings: list[Reading]) -> dict[tuple[str, str, float], int]:
    counts = Counter((r.device_id, r.metric, r.t_s) for r in readings)
    return {key: n for key, n in counts.items() if n > 1}


@pytest.fixture
def twin() -> Twin:
    twin = Twin(SITE, seed=0)
    twin.run_for(5.0)
    return twin


def _redfish_specs() -> list[RedfishDeviceSpec]:
    servers = [RedfishDeviceSpec(s.id, "server", psu_ids=tuple(p.id for p in s.psus)) for s in SITE.servers]
    pdus = [RedfishDeviceSpec(p.id, "pdu", outlet_ids=tuple(o.id for o in p.outlets)) for p in SITE.pdus]
    cdus = [RedfishDeviceSpec(r.id, "cdu") for r in SITE.racklets]
    return [*servers[:2], *pdus[:2], *cdus]


async def _check_polls(driver: Driver, now_s: Callable[[], float], polls: int = 2) -> list[Reading]:
    validator = ReadingValidator(site_device_ids(SITE), max_future_s=5.0)
    readings: list[Reading] = []
    for _ in range(polls):
        readings = await driver.read()
        assert readings
        assert repeated_keys(readings) == {}
        result = validator.validate(ReadingBatch.from_readings(readings), now_s=now_s())
        rejected = [(r, RejectReason(int(x))) for r, x in zip(readings, result.reasons, strict=True) if x]
        assert rejected == []
    return readings


@pytest.fixture
async def redfish(twin: Twin) -> AsyncIterator[list[tuple[RedfishEmulator, RedfishDriver]]]:
    pairs: list[tuple[RedfishEmulator, RedfishDriver]] = []
    for spec in _redfish_specs():
        emulator = RedfishEmulator(TwinDriver(twin), spec)
        await emulator.start()
        endpoint = RedfishEndpoint(emulator.url, spec.username, spec.password)
        driver = RedfishDriver(spec.device_id, endpoint, id_map=spec.id_map(), retry=FAST, now_s=lambda: twin.t_s)
        pairs.append((emulator, driver))
    try:
        yield pairs
    finally:
        for emulator, driver in pairs:
            await driver.close()
            await emulator.stop()


async def test_redfish_emulator_polls_have_unique_identities(
    twin: Twin, redfish: list[tuple[RedfishEmulator, RedfishDriver]]
) -> None:
    assert {e.spec.kind for e, _ in redfish} == {"server", "pdu", "cdu"}
    for _, driver in redfish:
        await _check_polls(driver, lambda: twin.t_s)


async def test_modbus_emulator_polls_have_unique_identities(twin: Twin) -> None:
    racklet = SITE.racklets[0]
    ids, emulator = racklet_emulator(TwinDriver(twin), racklet)  # as the stack wires it
    await emulator.start()
    driver = ModbusRackletDriver(ids, port=emulator.port, retry=FAST, now_s=lambda: twin.t_s)
    try:
        readings = await _check_polls(driver, lambda: twin.t_s)
    finally:
        await driver.close()
        await emulator.stop()
    direct = {(r.device_id, r.metric): r.value for r in twin.readings() if not r.tags}
    wire = {(r.device_id, r.metric): r.value for r in readings}
    # The decision layer's racklet readings keep their meaning over the wire.
    assert wire[(racklet.id, "leak_detected")] == direct[(racklet.id, "leak_detected")]
    assert wire[(racklet.id, "fan_speed_rpm")] == pytest.approx(direct[(racklet.id, "fan_speed_rpm")], abs=1.0)
    assert wire[(racklet.id, "inlet_setpoint_c")] == racklet.cooling.setpoint_inlet_c
