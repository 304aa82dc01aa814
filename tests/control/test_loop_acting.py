"""The ``acting`` hooks (bulk polls held while a response goes out) and the settle after an event."""

from __future__ import annotations

import asyncio
import time

from wattwise.act.base import Mode
from wattwise.control.assemble import Assembly, assemble
from wattwise.control.twin_run import TwinClock
from wattwise.decide.base import PowerState, SiteForecast
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus
from wattwise.sim.driver import TwinDriver
from wattwise.sim.runner import build_twin
from wattwise.sim.scenario import parse_scenario
from wattwise.store.duckdb_store import DuckDBStore

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
    sc = parse_scenario({"name": "acting", "site": "../examples/single-rack.yaml", "duration_s": 60})
    twin = build_twin(sc.model_copy(update={"source_file": "scenarios/x.yaml"}))
    needed = {d for s in twin.site.services for d in s.depends_on}
    low = next(s.id for s in twin.site.services if s.tier.value == "low" and s.id not in needed)
    a = assemble(
        twin.site,
        [TwinDriver(twin)],
        DuckDBStore(":memory:"),
        TwinClock(twin),
        Mode.ARMED,
        policies=[ShedNowPolicy(low)],  # type: ignore[list-item]
        decide_period_s=60.0,
    )
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
