"""Run a twin scenario with the real controller in the loop (in process, simulated time).

The controller reads the twin through its ``TwinDriver`` and acts through it, on a clock that
reads the twin's time — the same code path as on the floor, minus the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from wattwise.act.base import Mode
from wattwise.control.assemble import Assembly, assemble
from wattwise.sim.driver import TwinDriver
from wattwise.sim.runner import RunResult, build_twin, run_scenario
from wattwise.sim.scenario import Scenario
from wattwise.sim.twin import Twin
from wattwise.store.base import TimeSeriesStore
from wattwise.store.duckdb_store import DuckDBStore


class TwinClock:
    """A clock that reads the twin's simulated time (the runner steps the twin)."""

    def __init__(self, twin: Twin) -> None:
        self.twin = twin

    def now_s(self) -> float:
        """The twin's time, s."""
        return self.twin.t_s

    async def sleep_s(self, duration_s: float) -> None:
        """Time is advanced by the scenario runner, never by sleeping."""
        await asyncio.sleep(0)


@dataclass(frozen=True)
class ControlledRun:
    """A scenario result and the controller that ran it."""

    result: RunResult
    assembly: Assembly


def run_controlled(
    scenario: Scenario,
    mode: Mode = Mode.ARMED,
    store: TimeSeriesStore | None = None,
    *,
    decide_period_s: float = 5.0,
    poll_every_s: float = 5.0,
    store_every_s: float = 60.0,
    progress: Callable[[float, float], None] | None = None,
    **assemble_kw: object,
) -> ControlledRun:
    """Run ``scenario`` with a wattwise controller polling every ``poll_every_s`` simulated seconds.

    Events (UPS on battery, ATS transfer, breaker near trip) decide at the next poll, so the
    poll period bounds the reaction time; batteries bridge it.
    """
    twin = build_twin(scenario)
    driver = TwinDriver(twin)
    clock = TwinClock(twin)
    assembly = assemble(
        twin.site,
        [driver],
        store or DuckDBStore(":memory:"),
        clock,
        mode,
        decide_period_s=decide_period_s,
        poll_period_s=poll_every_s,
        store_every_s=store_every_s,
        **assemble_kw,  # type: ignore[arg-type]
    )
    loop = asyncio.new_event_loop()
    try:

        def hook(_: Twin, __: float) -> None:
            loop.run_until_complete(assembly.controller.tick())

        result = run_scenario(scenario, hook, hook_every_s=poll_every_s, twin=twin, progress=progress)
    finally:
        loop.close()
    return ControlledRun(result, assembly)
