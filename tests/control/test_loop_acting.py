"""The ``acting`` hooks (bulk polls held while a response goes out) and the settle after an event."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from control.loop_support import single_rack_armed
from wattwise.control.assemble import Assembly
from wattwise.decide.base import PowerState, SiteForecast
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus, Reading
from wattwise.telemetry.batch import ReadingBatch

SETTLE_S = 0.3


class ShedNowPolicy:
    """Every plan asks for one shed, due now."""

    name = "shed_now"

    def __init__(self, target: str) -> None:
        self.target = target

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        action = Action(kind=ActionKind.SERVICE_SHED, target_id=self.target, reason="test", not_before_s=state.t_s)
        return Decision(policy_name=self.name, status=DecisionStatus.OK, actions=(action,))


def _rig() -> tuple[Assembly, list[tuple[float, bool]]]:
    _, a, _ = single_rack_armed(ShedNowPolicy, "acting")
    a.controller.settle_s = SETTLE_S
    told: list[tuple[float, bool]] = []
    a.controller.acting.append(lambda acting: told.append((time.monotonic(), acting)))
    return a, told


def _event(name: str | None) -> object:
    return lambda before, after, expected: name


async def test_a_routine_response_releases_at_once() -> None:
    a, told = _rig()
    await a.controller.tick(force_decide=True)
    assert [acting for _, acting in told] == [True, False]


async def test_an_event_response_releases_only_after_the_settle() -> None:
    a, told = _rig()
    a.controller.detector = _event("ups-1: on_battery")  # type: ignore[assignment]
    await a.controller.tick()
    t_done = time.monotonic()
    assert [acting for _, acting in told] == [True]  # still held: the event may set off more
    await asyncio.sleep(SETTLE_S + 0.2)
    assert [acting for _, acting in told] == [True, False]
    assert told[1][0] - t_done >= SETTLE_S - 0.05


async def test_a_response_within_the_settle_takes_it_over() -> None:
    a, told = _rig()
    a.controller.detector = _event("ups-1: on_battery")  # type: ignore[assignment]
    await a.controller.tick()
    a.controller.detector = _event(None)  # type: ignore[assignment]
    await a.controller.tick(force_decide=True)  # a routine response before the settle fell due
    assert [acting for _, acting in told] == [True, True, False]
    await asyncio.sleep(SETTLE_S + 0.2)
    assert [acting for _, acting in told] == [True, True, False]  # the first settle was cancelled


async def test_stopping_the_loop_releases_what_a_settle_still_holds() -> None:
    a, told = _rig()
    a.controller.detector = _event("ups-1: on_battery")  # type: ignore[assignment]
    a.controller.settle_s = 60.0
    acted = asyncio.Event()
    a.controller.acting.append(lambda acting: acted.set())
    task = asyncio.create_task(a.controller.run())
    await asyncio.wait_for(acted.wait(), timeout=10.0)
    a.controller.stop()
    a.controller.wake()
    await asyncio.wait_for(task, timeout=10.0)
    assert [acting for _, acting in told][-1] is False


async def test_a_routine_response_during_a_power_event_lingers_too() -> None:
    a, told = _rig()
    inner = a.controller.planner

    class DuringOutage:
        """The assembly's planner, with every context saying a power event is in progress."""

        def __getattr__(self, name: str) -> object:
            return getattr(inner, name)

        def plan(self, latest: object, now_s: float, event: str | None) -> object:
            decisions, ctx = inner.plan(latest, now_s, event)  # type: ignore[arg-type]
            return decisions, replace(ctx, power_event=True)

    a.controller.planner = DuringOutage()  # type: ignore[assignment]
    await a.controller.tick(force_decide=True)
    assert [acting for _, acting in told] == [True]
    await asyncio.sleep(SETTLE_S + 0.2)
    assert [acting for _, acting in told] == [True, False]


async def test_a_standby_generator_is_not_a_power_event_but_a_lost_utility_is() -> None:
    a, _ = _rig()
    await a.controller.tick(force_decide=True)
    latest = a.controller.latest
    feeds = {f.id: f.source for f in a.graph.site.feeds}
    assert "generator" in feeds.values()
    assert all(latest.get(f, "source_available", 1.0) == 0.0 for f, src in feeds.items() if src == "generator")
    _, ctx = a.planner.plan(latest, 0.0, None)
    assert not ctx.power_event  # generators on standby read unavailable: that is normal
    utility = next(f for f, src in feeds.items() if src == "grid")
    latest.update_batch(ReadingBatch.from_readings([Reading(utility, "source_available", 0.0, 1.0)]))
    _, ctx = a.planner.plan(latest, 1.0, None)
    assert ctx.power_event
