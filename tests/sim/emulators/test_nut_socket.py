"""Closed loop over real upsd: NutDriver → upsd → wattwise socket driver → Driver state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conftest import free_port
from drivers.peers import need_nut
from wattwise.drivers.nut import NutDriver
from wattwise.drivers.nut_client import NutClient, NutEndpoint
from wattwise.drivers.retry import RetryPolicy
from wattwise.model.values import Action, ActionKind
from wattwise.sim.emulators.memory import MemoryDriver
from wattwise.sim.emulators.nut_socket import NutDeviceSpec, NutSocketEmulator
from wattwise.sim.emulators.upsd import UpsdConfig, UpsdProcess

OUTLETS = ("pdu-1/o1", "pdu-1/o2", "pdu-1/o3")


def _state() -> MemoryDriver:
    state = {("pdu-1", "power_w"): 900.0, ("pdu-1", "voltage_v"): 230.0, ("pdu-1", "load_frac"): 0.3}
    state.update({("pdu-1", f"current_l{p}_a"): 1.0 + p / 2 for p in (1, 2, 3)})
    for i, oid in enumerate(OUTLETS):
        state[(oid, "outlet_on")] = 1.0
        state[(oid, "power_w")] = 100.0 * (i + 1)
    return MemoryDriver(state)


@pytest.fixture
async def twin_upsd(tmp_path: Path) -> AsyncIterator[tuple[MemoryDriver, int]]:
    need_nut()
    backend = _state()
    proc = UpsdProcess(UpsdConfig(tmp_path, free_port(), sockets=["epdu"]))
    proc.start_drivers()
    emulator = NutSocketEmulator(
        backend, NutDeviceSpec("epdu", "pdu-1", OUTLETS, "pdu"), proc.config.socket_path("epdu")
    )
    await emulator.start()
    proc.start_upsd()
    try:
        await proc.wait_ready(["epdu"], timeout_s=5.0)
        yield backend, proc.config.port
    finally:
        proc.stop()
        await emulator.stop()


async def test_outlet_off_through_real_upsd_changes_state(twin_upsd: tuple[MemoryDriver, int]) -> None:
    backend, port = twin_upsd
    ids = {n: oid for n, oid in enumerate(OUTLETS, start=1)}
    driver = NutDriver(
        "pdu-1",
        "epdu",
        NutEndpoint(port=port, username="admin", password="secret"),
        outlet_ids=ids,
        retry=RetryPolicy(timeout_s=2.0),
    )
    before = {(r.device_id, r.metric): r.value for r in await driver.read()}
    assert before[("pdu-1/o2", "outlet_on")] == 1.0
    assert before[("pdu-1/o2", "power_w")] == 200.0
    assert [before[("pdu-1", f"current_l{p}_a")] for p in (1, 2, 3)] == [1.5, 2.0, 2.5]  # input.L1..L3.current

    result = await driver.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="pdu-1/o2", reason="test"))
    assert result.ok, result.message
    assert backend.applied[-1].target_id == "pdu-1/o2"
    after = {(r.device_id, r.metric): r.value for r in await driver.read()}
    assert after[("pdu-1/o2", "outlet_on")] == 0.0
    assert after[("pdu-1/o2", "power_w")] == 0.0
    assert after[("pdu-1/o1", "outlet_on")] == 1.0

    result = await driver.apply(Action(kind=ActionKind.OUTLET_ON, target_id="pdu-1/o2"))
    assert result.ok
    restored = {(r.device_id, r.metric): r.value for r in await driver.read()}
    assert restored[("pdu-1/o2", "power_w")] == 200.0
    await driver.close()


async def test_whole_load_off_and_unknown_outlet(twin_upsd: tuple[MemoryDriver, int]) -> None:
    backend, port = twin_upsd
    driver = NutDriver("pdu-1", "epdu", NutEndpoint(port=port, username="admin", password="secret"))
    assert (await driver.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="pdu-1"))).ok
    states = [backend.state[(oid, "outlet_on")] for oid in OUTLETS]
    assert states == [0.0, 0.0, 0.0]
    refused = await driver.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="pdu-1.outlet9"))
    assert not refused.ok
    client = NutClient(NutEndpoint(port=port))
    assert "outlet.3.load.off" in await client.list_cmd("epdu")
    await client.close()
    await driver.close()


async def test_state_changes_behind_upsd_are_pushed(twin_upsd: tuple[MemoryDriver, int]) -> None:
    backend, port = twin_upsd
    backend.state[("pdu-1", "power_w")] = 1234.0
    driver = NutDriver("pdu-1", "epdu", NutEndpoint(port=port))
    for _ in range(40):
        values = {(r.device_id, r.metric): r.value for r in await driver.read()}
        if values[("pdu-1", "power_w")] == 1234.0:
            break
        await asyncio.sleep(0.05)
    assert values[("pdu-1", "power_w")] == 1234.0
    await driver.close()
