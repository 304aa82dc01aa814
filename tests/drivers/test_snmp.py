"""SnmpPduDriver against Debian snmpsimd with a wattwise APC rPDU recording (v2c and v3)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from conftest import REPO, free_port
from drivers.peers import V3_AUTH, V3_AUTH_ONLY_USER, V3_PRIV, V3_USER, running_snmpsimd
from wattwise.drivers.retry import RetryPolicy
from wattwise.drivers.snmp import SnmpPduDriver, SnmpTarget
from wattwise.errors import DeviceAuthError, DeviceUnavailable
from wattwise.model.metrics import METRICS
from wattwise.model.values import Action, ActionKind

RECORDING = REPO / "tests" / "fixtures" / "snmp" / "apc-rpdu.snmprec"
RECORDING_3PH = REPO / "tests" / "fixtures" / "snmp" / "apc-rpdu-3ph.snmprec"
FAST = RetryPolicy(timeout_s=0.5, attempts=2, backoff_s=0.01)


@pytest.fixture(scope="module")
def agent_port() -> Iterator[int]:
    with running_snmpsimd(RECORDING) as port:
        yield port


def _values(readings: list) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], float]:  # type: ignore[type-arg]
    return {(r.device_id, r.metric, r.tags): r.value for r in readings}


async def test_v2c_reads_power_phase_and_outlets(agent_port: int) -> None:
    driver = SnmpPduDriver(
        "pdu-a", SnmpTarget(port=agent_port, community="apc-rpdu"), outlet_ids={1: "pdu-a/o1"}, retry=FAST
    )
    readings = await driver.read()
    assert all(r.metric in METRICS for r in readings)
    v = _values(readings)
    assert v[("pdu-a", "power_w", ())] == 845.0
    assert v[("pdu-a", "current_l1_a", (("phase", "L1"),))] == pytest.approx(3.7)  # deci-amps → A
    assert not any(k[0] == "pdu-a" and k[1] == "current_a" for k in v)  # a phase is never the bare current_a
    assert v[("pdu-a/o1", "current_a", ())] == pytest.approx(0.5)
    assert v[("pdu-a.outlet8", "current_a", ())] == pytest.approx(1.2)
    assert sum(1 for k in v if k[1] == "outlet_on") == 8
    ident = await driver.identify()
    assert "AP8959EU3" in ident.values()
    await driver.close()


@pytest.fixture(scope="module")
def agent_3ph_port() -> Iterator[int]:
    with running_snmpsimd(RECORDING_3PH) as port:
        yield port


async def test_three_phase_loads_are_distinct_metrics(agent_3ph_port: int) -> None:
    # Regression (wattwise issue 5): the three rPDULoadStatusLoad rows of one poll share
    # (device, t_s); each phase must be its own metric or telemetry drops two as duplicates.
    driver = SnmpPduDriver("pdu-3", SnmpTarget(port=agent_3ph_port, community="apc-rpdu-3ph"), retry=FAST)
    readings = await driver.read()
    await driver.close()
    assert all(r.metric in METRICS for r in readings)
    keys = [(r.device_id, r.metric, r.t_s) for r in readings]
    assert len(keys) == len(set(keys))
    phases = {r.metric: (r.value, r.tags) for r in readings if r.device_id == "pdu-3" and r.metric != "power_w"}
    assert phases == {
        "current_l1_a": (pytest.approx(3.7), (("phase", "L1"),)),
        "current_l2_a": (pytest.approx(5.2), (("phase", "L2"),)),
        "current_l3_a": (pytest.approx(4.1), (("phase", "L3"),)),
    }
    v = _values(readings)
    assert v[("pdu-3.outlet1", "current_a", ())] == pytest.approx(4.4)
    assert (v[("pdu-3.outlet1", "outlet_on", ())], v[("pdu-3.outlet2", "outlet_on", ())]) == (1.0, 0.0)


async def test_v3_authnopriv_outlet_off_and_refusal(agent_port: int) -> None:
    target = SnmpTarget(port=agent_port, v3_user=V3_AUTH_ONLY_USER, v3_auth_key=V3_AUTH, v3_context="apc-rpdu")
    driver = SnmpPduDriver("pdu-a", target, retry=FAST)
    result = await driver.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="pdu-a.outlet3"))
    assert result.ok, result.message
    v = _values(await driver.read())
    assert v[("pdu-a.outlet3", "outlet_on", ())] == 0.0
    assert v[("pdu-a.outlet2", "outlet_on", ())] == 1.0
    assert (await driver.apply(Action(kind=ActionKind.OUTLET_ON, target_id="pdu-a.outlet3"))).ok
    v = _values(await driver.read())
    assert v[("pdu-a.outlet3", "outlet_on", ())] == 1.0
    not_an_outlet = await driver.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="pdu-b.outlet1"))
    assert not not_an_outlet.ok
    await driver.close()


async def test_apply_many_sets_several_outlets_in_one_exchange(agent_port: int) -> None:
    target = SnmpTarget(port=agent_port, v3_user=V3_AUTH_ONLY_USER, v3_auth_key=V3_AUTH, v3_context="apc-rpdu")
    driver = SnmpPduDriver("pdu-a", target, retry=FAST)
    sets: list[int] = []
    real_set = driver._session.set

    async def counted(binds):  # type: ignore[no-untyped-def]
        sets.append(len(binds))
        return await real_set(binds)

    driver._session.set = counted  # type: ignore[method-assign]
    off = [Action(kind=ActionKind.OUTLET_OFF, target_id=f"pdu-a.outlet{n}") for n in (2, 4, 6)]
    stray = Action(kind=ActionKind.OUTLET_OFF, target_id="pdu-b.outlet1")
    results = await driver.apply_many([off[0], stray, off[1], off[2]])
    assert [r.command_id for r in results] == [a.command_id for a in (off[0], stray, off[1], off[2])]
    assert [r.ok for r in results] == [True, False, True, True]
    assert sets == [3]  # the three outlets in one SET; the stray one never reached the agent
    v = _values(await driver.read())
    assert [v[(f"pdu-a.outlet{n}", "outlet_on", ())] for n in range(1, 8)] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    back = await driver.apply_many([a.model_copy(update={"kind": ActionKind.OUTLET_ON}) for a in off])
    assert all(r.ok for r in back)
    v = _values(await driver.read())
    assert all(v[(f"pdu-a.outlet{n}", "outlet_on", ())] == 1.0 for n in range(1, 9))
    await driver.close()


async def test_v3_wrong_auth_key_and_unknown_user_are_auth_errors(agent_port: int) -> None:
    # snmpsimd answers a wrong key with a usmStatsWrongDigests report signed with the right key
    # (pysnmp drops it as unverifiable: the session fails the request at once), and an unknown
    # user at noAuthNoPriv with a usmStatsUnknownUserNames report.
    wrong_key = SnmpTarget(
        port=agent_port, v3_user=V3_AUTH_ONLY_USER, v3_auth_key="wrong-secret", v3_context="apc-rpdu"
    )
    unknown = SnmpTarget(port=agent_port, v3_user="nobody-here", v3_context="apc-rpdu")
    for target, text in ((wrong_key, "authentication key"), (unknown, "Unknown USM user")):
        driver = SnmpPduDriver("pdu-a", target, retry=FAST)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(DeviceAuthError, match=text):
            await driver.read()
        assert loop.time() - t0 < FAST.timeout_s  # not retried, not waited out
        assert not driver.health().available
        await driver.close()


async def test_v3_failures_the_agent_is_silent_about_are_bounded(agent_port: int) -> None:
    # Measured: snmpsimd 0.4.5 sends no report for an unknown user at authNoPriv or for a wrong
    # privacy key (net-snmp's snmpget times out as well), so these read as a dead agent.
    silent = (
        SnmpTarget(port=agent_port, v3_user="nobody-here", v3_auth_key="whatever1", v3_context="apc-rpdu"),
        SnmpTarget(
            port=agent_port, v3_user=V3_USER, v3_auth_key=V3_AUTH, v3_priv_key="wrong-privkey", v3_context="apc-rpdu"
        ),
    )
    for target in silent:
        driver = SnmpPduDriver("pdu-a", target, retry=FAST)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(DeviceUnavailable) as caught:
            await driver.read()
        assert not isinstance(caught.value, DeviceAuthError)
        assert loop.time() - t0 < 2.5
        await driver.close()


async def test_wrong_community_and_dead_agent_are_unavailable(agent_port: int) -> None:
    for target in (SnmpTarget(port=agent_port, community="nope"), SnmpTarget(port=free_port(), community="x")):
        driver = SnmpPduDriver("pdu-a", target, retry=FAST)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(DeviceUnavailable):
            await driver.read()
        assert loop.time() - t0 < 2.5
        assert driver.tracker.staleness_s() == float("inf")
        await driver.close()


async def test_v3_authpriv_aes_reads(agent_port: int) -> None:
    pytest.importorskip("cryptography", reason="pysnmp needs cryptography for AES privacy")
    target = SnmpTarget(
        port=agent_port, v3_user=V3_USER, v3_auth_key=V3_AUTH, v3_priv_key=V3_PRIV, v3_context="apc-rpdu"
    )
    driver = SnmpPduDriver("pdu-a", target, retry=FAST)
    v = _values(await driver.read())
    assert v[("pdu-a", "power_w", ())] == 845.0
    await driver.close()
