"""The poller keeps going when devices are dead, hang or answer garbage; staleness is data."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from functools import partial

import numpy as np
import pytest

from conftest import free_port
from wattwise.drivers.nut import NutDriver
from wattwise.drivers.nut_client import NutEndpoint
from wattwise.drivers.poller import Poller
from wattwise.drivers.redfish import RedfishDriver
from wattwise.drivers.redfish_client import RedfishEndpoint
from wattwise.drivers.retry import RetryPolicy
from wattwise.model.clock import WallClock
from wattwise.model.values import Reading
from wattwise.sim.emulators.memory import MemoryDriver
from wattwise.sim.emulators.redfish import RedfishEmulator
from wattwise.sim.emulators.redfish_resources import RedfishDeviceSpec

FAST = RetryPolicy(timeout_s=0.2, attempts=1)


@pytest.fixture
async def peers() -> AsyncIterator[tuple[int, int, RedfishEmulator]]:
    writers: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.readline():
            writer.write(b"\x00\xff garbage\n")
            await writer.drain()

    hanging = await asyncio.start_server(hang, "127.0.0.1", 0)
    garbled = await asyncio.start_server(garbage, "127.0.0.1", 0)
    live = RedfishEmulator(MemoryDriver({("srv-1", "power_w"): 300.0}), RedfishDeviceSpec("srv-1", "server"))
    await live.start()
    try:
        yield hanging.sockets[0].getsockname()[1], garbled.sockets[0].getsockname()[1], live
    finally:
        for w in writers:
            w.close()
        for s in (hanging, garbled):
            s.close()
            await s.wait_closed()
        await live.stop()


async def test_dead_hanging_and_garbage_devices_do_not_stall_the_rest(
    peers: tuple[int, int, RedfishEmulator], caplog: pytest.LogCaptureFixture
) -> None:
    hang_port, garbage_port, live = peers
    received: dict[str, int] = {}

    def sink(name: str, readings: Sequence[Reading]) -> None:
        received[name] = received.get(name, 0) + len(readings)

    drivers = [
        RedfishDriver("srv-1", RedfishEndpoint(live.url, "admin", "secret"), retry=FAST),
        NutDriver("ups-dead", "u", NutEndpoint(port=free_port()), retry=FAST),
        NutDriver("ups-hang", "u", NutEndpoint(port=hang_port), retry=FAST),
        NutDriver("ups-garbage", "u", NutEndpoint(port=garbage_port), retry=FAST),
    ]
    poller = Poller([(d, 0.05) for d in drivers], WallClock(), sink=sink, timeout_s=0.5)
    caplog.set_level(logging.WARNING, logger="wattwise.drivers.poller")
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(1.0)
    poller.stop()
    await asyncio.wait_for(task, timeout=2.0)

    live_c, dead_c, hang_c, garbage_c = poller.coordinators
    assert live_c.available and live_c.polls >= 10  # kept its period while others hung
    assert received == {"redfish:srv-1": received["redfish:srv-1"]}
    for c in (dead_c, hang_c, garbage_c):
        assert not c.available
        assert c.failures >= 3
        assert c.staleness_s() == float("inf")
    assert "not UTF-8" in garbage_c.last_error  # a DeviceProtocolError, translated once
    # One warning per failing device (the first failure), not one per poll.
    warnings = [r for r in caplog.records if r.name == "wattwise.drivers.poller"]
    assert sorted(r.getMessage().split()[0] for r in warnings) == ["nut:ups-dead", "nut:ups-garbage", "nut:ups-hang"]
    for d in drivers:
        await d.close()


async def test_poll_all_is_bounded_and_staleness_rises_after_death(peers: tuple[int, int, RedfishEmulator]) -> None:
    _, _, live = peers
    driver = RedfishDriver("srv-1", RedfishEndpoint(live.url, "admin", "secret"), retry=FAST)
    poller = Poller([(driver, 1.0)], WallClock())
    assert all(r.ok for r in await poller.poll_all())
    assert poller.staleness_s()["redfish:srv-1"] < 0.5
    await live.stop()
    await driver.close()
    driver.client = type(driver.client)(driver.endpoint, FAST, "srv-1")  # fresh connection pool
    await asyncio.sleep(0.3)
    results = await poller.poll_all()
    assert not results[0].ok
    assert poller.staleness_s()["redfish:srv-1"] >= 0.3
    assert not poller.health()[0].available
    await driver.close()


class Recorder:
    """A device with nothing to read that records when it was polled."""

    def __init__(self, name: str, clock: WallClock, seen: dict[str, list[float]]) -> None:
        self.name = name
        self.clock = clock
        self.seen = seen

    def supports(self, kind: object) -> bool:
        return False

    async def read(self) -> list[Reading]:
        self.seen.setdefault(self.name, []).append(self.clock.now_s())
        return []

    async def close(self) -> None:
        return None


async def test_spread_polls_each_device_at_its_own_phase_of_the_period() -> None:
    clock = WallClock()
    seen: dict[str, list[float]] = {}
    Quiet = partial(Recorder, clock=clock, seen=seen)

    async def first_polls(spread: bool) -> tuple[Poller, float]:
        seen.clear()
        poller = Poller([(Quiet(f"pdu-{i}"), 1.0) for i in range(40)], clock, spread=spread)  # type: ignore[misc]
        t0 = clock.now_s()
        task = asyncio.create_task(poller.run())
        await asyncio.sleep(1.3)
        poller.stop()
        await asyncio.wait_for(task, timeout=5.0)
        return poller, t0

    poller, t0 = await first_polls(spread=True)
    firsts = {c.name: seen[c.name][0] - t0 for c in poller.coordinators}
    for c in poller.coordinators:
        assert firsts[c.name] == pytest.approx(c.phase_frac(), abs=0.15)  # its phase of the 1 s period
    phases = np.array([c.phase_frac() for c in poller.coordinators])
    assert np.corrcoef(phases, [firsts[c.name] for c in poller.coordinators])[0, 1] > 0.95
    assert max(firsts.values()) - min(firsts.values()) > 0.5  # spread over the period, not one burst
    poller, t0 = await first_polls(spread=False)
    assert max(seen[c.name][0] - t0 for c in poller.coordinators) < 0.15  # all at once without it


async def test_held_bulk_polls_resume_at_their_own_phases() -> None:
    clock = WallClock()
    seen: dict[str, list[float]] = {}
    Quiet = partial(Recorder, clock=clock, seen=seen)

    fast = [(Quiet("ups-1"), 0.1)]
    bulk = [(Quiet(f"srv-{i}"), 0.5) for i in range(30)]
    poller = Poller([*fast, *bulk], clock, spread=True, bulk_period_s=0.5)  # type: ignore[misc]
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0.6)  # every device polled at least once
    poller.hold_bulk(True)
    assert poller.bulk_held
    t_hold = clock.now_s()
    await asyncio.sleep(1.1)
    poller.hold_bulk(False)
    assert not poller.bulk_held
    t_open = clock.now_s()
    await asyncio.sleep(1.2)
    poller.stop()
    await asyncio.wait_for(task, timeout=5.0)

    ups = np.array(seen["ups-1"])
    assert ((ups > t_hold + 0.2) & (ups < t_open)).sum() >= 7  # the fast device kept its period
    bulk_polls = [t for name, ts in seen.items() if name != "ups-1" for t in ts]
    # At most the polls already in flight when the hold began; none while held.
    assert not [t for t in bulk_polls if t_hold + 0.05 < t < t_open - 0.02]
    back = [min(t for t in ts if t >= t_open - 0.02) for name, ts in seen.items() if name != "ups-1"]
    assert len(back) == len(bulk)  # every held device came back ...
    assert max(back) - min(back) > 0.25  # ... each at its own phase of the period, not in one burst


async def test_stop_ends_coordinators_waiting_at_a_held_gate() -> None:
    clock = WallClock()
    poller = Poller([(Recorder("srv-1", clock, {}), 0.2)], clock, bulk_period_s=0.1)  # type: ignore[list-item]
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0.3)
    poller.hold_bulk(True)
    await asyncio.sleep(0.3)
    poller.stop()
    await asyncio.wait_for(task, timeout=2.0)
