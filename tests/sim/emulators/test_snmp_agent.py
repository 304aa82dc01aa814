"""Closed loop over SNMP: SnmpPduDriver → wattwise twin-backed agent → Driver state."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from wattwise.drivers.retry import RetryPolicy
from wattwise.drivers.snmp import OID_OUTLET_COMMAND, SnmpPduDriver, SnmpTarget
from wattwise.errors import DeviceUnavailable
from wattwise.model.values import Action, ActionKind, Reading
from wattwise.sim.emulators.memory import MemoryDriver
from wattwise.sim.emulators.snmp import SnmpPduAgent, SnmpPduSpec

OUTLETS = ("pdu-9/o1", "pdu-9/o2", "pdu-9/o3", "pdu-9/o4")
FAST = RetryPolicy(timeout_s=0.5, attempts=2, backoff_s=0.01)


class PhasedMemory(MemoryDriver):
    """MemoryDriver plus per-phase currents, as the twin reports them (one metric per phase, tagged)."""

    async def read(self) -> list[Reading]:
        out = await super().read()
        t = self.now_s()
        return out + [Reading("pdu-9", f"current_l{p}_a", 2.0 + p, t, tags=(("phase", f"L{p}"),)) for p in (1, 2, 3)]


@pytest.fixture
async def agent() -> AsyncIterator[tuple[MemoryDriver, SnmpPduAgent]]:
    state = {("pdu-9", "power_w"): 1500.0}
    for i, oid in enumerate(OUTLETS):
        state.update({(oid, "outlet_on"): 1.0, (oid, "power_w"): 230.0 * (i + 1)})
    backend = PhasedMemory(state)
    agent = SnmpPduAgent(backend, SnmpPduSpec("pdu-9", OUTLETS, phases=3, community="twin"))
    await agent.start()
    try:
        yield backend, agent
    finally:
        await agent.stop()


def _driver(agent: SnmpPduAgent, community: str = "twin") -> SnmpPduDriver:
    ids = {n: oid for n, oid in enumerate(OUTLETS, start=1)}
    return SnmpPduDriver("pdu-9", SnmpTarget(port=agent.port, community=community), outlet_ids=ids, retry=FAST)


async def test_outlet_off_changes_twin_state(agent: tuple[MemoryDriver, SnmpPduAgent]) -> None:
    backend, srv = agent
    driver = _driver(srv)
    v = {(r.device_id, r.metric, r.tags): r.value for r in await driver.read()}
    assert v[("pdu-9", "power_w", ())] == 1500.0
    phases = [v[("pdu-9", f"current_l{p}_a", (("phase", f"L{p}"),))] for p in (1, 2, 3)]
    assert phases == [pytest.approx(3.0), pytest.approx(4.0), pytest.approx(5.0)]
    assert v[("pdu-9/o2", "current_a", ())] == pytest.approx(2.0)  # 460 W at 230 V
    assert (await driver.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="pdu-9/o2"))).ok
    assert backend.state[("pdu-9/o2", "outlet_on")] == 0.0
    v = {(r.device_id, r.metric, r.tags): r.value for r in await driver.read()}
    assert v[("pdu-9/o2", "outlet_on", ())] == 0.0
    assert v[("pdu-9/o2", "current_a", ())] == 0.0
    assert v[("pdu-9/o1", "outlet_on", ())] == 1.0
    await driver.close()


async def test_invalid_set_is_refused(agent: tuple[MemoryDriver, SnmpPduAgent]) -> None:
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        set_cmd,
    )
    from pysnmp.proto.rfc1902 import Integer32

    _, srv = agent
    engine = SnmpEngine()
    target = await UdpTransportTarget.create(("127.0.0.1", srv.port), timeout=0.5, retries=0)
    _, status, _, _ = await set_cmd(
        engine,
        CommunityData("twin", mpModel=1),
        target,
        ContextData(),
        ObjectType(ObjectIdentity(f"{OID_OUTLET_COMMAND}.1"), Integer32(9)),
    )
    assert str(status) == "wrongValue"
    _, status, _, _ = await set_cmd(
        engine,
        CommunityData("twin", mpModel=1),
        target,
        ContextData(),
        ObjectType(ObjectIdentity(f"{OID_OUTLET_COMMAND}.7"), Integer32(2)),
    )
    assert str(status) == "notWritable"
    engine.close_dispatcher()


async def test_wrong_community_gets_no_answer(agent: tuple[MemoryDriver, SnmpPduAgent]) -> None:
    _, srv = agent
    driver = _driver(srv, community="public")
    with pytest.raises(DeviceUnavailable):
        await driver.read()
    await driver.close()


async def test_getnext_getbulk_and_v1_errors(agent: tuple[MemoryDriver, SnmpPduAgent]) -> None:
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        bulk_cmd,
        get_cmd,
        next_cmd,
    )

    from wattwise.drivers.snmp import OID_OUTLET_NAME, OID_POWER_W

    _, srv = agent
    engine = SnmpEngine()
    target = await UdpTransportTarget.create(("127.0.0.1", srv.port), timeout=0.5, retries=0)
    v2c = CommunityData("twin", mpModel=1)
    _, status, _, binds = await next_cmd(
        engine, v2c, target, ContextData(), ObjectType(ObjectIdentity(OID_OUTLET_NAME))
    )
    assert not status
    assert [(str(o), str(v)) for o, v in binds] == [(f"{OID_OUTLET_NAME}.1", "pdu-9/o1")]
    _, status, _, binds = await bulk_cmd(
        engine, v2c, target, ContextData(), 0, 4, ObjectType(ObjectIdentity(OID_OUTLET_NAME))
    )
    assert [str(v) for _, v in binds] == list(OUTLETS)
    v1 = CommunityData("twin", mpModel=0)
    _, status, _, binds = await get_cmd(engine, v1, target, ContextData(), ObjectType(ObjectIdentity(OID_POWER_W)))
    assert not status and int(binds[0][1]) == 1500
    _, status, index, _ = await get_cmd(
        engine,
        v1,
        target,
        ContextData(),
        ObjectType(ObjectIdentity(OID_POWER_W)),
        ObjectType(ObjectIdentity("1.3.6.1.9.9")),
    )
    assert (str(status), int(index)) == ("noSuchName", 2)  # v1 has no exception values
    engine.close_dispatcher()


async def test_many_agents_share_one_engine() -> None:
    import asyncio

    from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

    from wattwise.drivers.snmp_session import LANES

    agents = [SnmpPduAgent(MemoryDriver({(f"p{i}", "power_w"): 100.0 + i}), SnmpPduSpec(f"p{i}")) for i in range(40)]
    for a in agents:
        await a.start()
    engine = SnmpEngine()
    drivers = [SnmpPduDriver(f"p{i}", SnmpTarget(port=a.port), retry=FAST, engine=engine) for i, a in enumerate(agents)]
    try:
        for _ in range(3):  # every answer of a burst arrives, over several sockets of the engine
            rounds = await asyncio.gather(*(d.read() for d in drivers))
            assert [next(r.value for r in rs if r.metric == "power_w") for rs in rounds] == [
                100.0 + i for i in range(40)
            ]
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.entity import config

        lanes = {a.port % LANES for a in agents}
        assert len(lanes) > 1
        assert all(config.get_transport(engine, udp.DOMAIN_NAME + (k,)) is not None for k in lanes)
        assert config.get_transport(engine, udp.DOMAIN_NAME + (max(lanes) + LANES,)) is None
    finally:
        for d in drivers:
            await d.close()
        engine.close_dispatcher()
        for a in agents:
            await a.stop()
