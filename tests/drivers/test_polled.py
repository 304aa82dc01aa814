"""PolledDriver: readings gathered by the poller's coordinators; a dead or slow device stalls nothing."""

from __future__ import annotations

import asyncio
import time

from wattwise.drivers.base import Driver
from wattwise.drivers.polled import PolledDriver
from wattwise.errors import DeviceUnavailable
from wattwise.model.clock import WallClock
from wattwise.model.values import Action, ActionKind, ActionResult, Reading


class _Fake:
    """A device that answers with one reading per poll, or fails, or hangs."""

    def __init__(self, name: str, behaviour: str = "ok") -> None:
        self.name = name
        self.behaviour = behaviour
        self.polls = 0
        self.applied: list[Action] = []

    def supports(self, kind: ActionKind) -> bool:
        return kind is ActionKind.OUTLET_OFF

    async def read(self) -> list[Reading]:
        self.polls += 1
        if self.behaviour == "dead":
            raise DeviceUnavailable("no route", device_id=self.name)
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        return [Reading(self.name, "power_w", float(self.polls), time.time())]

    async def apply(self, action: Action) -> ActionResult:
        self.applied.append(action)
        return ActionResult(command_id=action.command_id, ok=True)

    async def close(self) -> None:
        return None


async def _gather(polled: PolledDriver, want: int, limit_s: float = 5.0) -> list[Reading]:
    out: list[Reading] = []
    deadline = time.monotonic() + limit_s
    while len(out) < want and time.monotonic() < deadline:
        out += await polled.read()
        await asyncio.sleep(0.02)
    return out


async def test_reads_what_arrived_and_a_dead_or_hung_device_stalls_nothing() -> None:
    ok, dead, hung = _Fake("ok"), _Fake("dead", "dead"), _Fake("hung", "hang")
    members: list[tuple[Driver, float]] = [(ok, 0.05), (dead, 0.05), (hung, 0.05)]
    polled = PolledDriver(members, WallClock(), lambda a: None)
    try:
        t0 = time.monotonic()
        readings = await _gather(polled, 5)
        assert len(readings) >= 5 and time.monotonic() - t0 < 3.0  # the hung device's 0.05 s deadline, not an hour
        assert {r.device_id for r in readings} == {"ok"}
        values = [r.value for r in readings]
        assert values == sorted(values)  # oldest first, each reading handed over once
        assert len(set(values)) == len(values)
        health = {h.device_id: h for h in polled.health()}
        assert health["ok"].available and health["ok"].last_ok_t_s is not None
        assert not health["dead"].available and "no route" in health["dead"].last_error
        assert not health["hung"].available and health["hung"].last_ok_t_s is None
        assert dead.polls >= 2  # a failing device keeps being polled
    finally:
        await polled.close()
    after = ok.polls
    await asyncio.sleep(0.2)
    assert ok.polls == after  # close() stopped the coordinators


async def test_actions_go_to_the_routed_driver() -> None:
    a, b = _Fake("a"), _Fake("b")
    polled = PolledDriver([(a, 1.0), (b, 1.0)], WallClock(), lambda act: b if act.target_id == "b.o1" else None)
    try:
        assert polled.supports(ActionKind.OUTLET_OFF) and not polled.supports(ActionKind.SERVICE_SHED)
        done = await polled.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="b.o1"))
        assert done.ok and [x.target_id for x in b.applied] == ["b.o1"] and not a.applied
        refused = await polled.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="c.o1"))
        assert not refused.ok and "no endpoint" in refused.message
    finally:
        await polled.close()


async def test_prime_waits_for_one_answer_or_failure_of_each_device() -> None:
    ok, dead, hung = _Fake("ok"), _Fake("dead", "dead"), _Fake("hung", "hang")
    polled = PolledDriver([(ok, 60.0), (dead, 60.0), (hung, 0.2)], WallClock(), lambda a: None)
    try:
        t0 = time.monotonic()
        assert await polled.prime() == 1
        assert 0.15 < time.monotonic() - t0 < 5.0  # the hung device's deadline (its period), no longer
        first = await polled.read()
        assert [(r.device_id, r.value) for r in first] == [("ok", 1.0)]  # one poll each: nothing twice
        assert await polled.read() == []  # the next poll is a 60 s period away
    finally:
        await polled.close()
