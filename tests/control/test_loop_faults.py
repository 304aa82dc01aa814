"""The loop keeps going through faults: a policy raising, a device refusing, a driver dying."""

from __future__ import annotations

import asyncio

from wattwise.act.base import Mode, Phase
from wattwise.control.assemble import assemble
from wattwise.control.twin_run import TwinClock
from wattwise.decide.allocation import GreedyAllocationPolicy
from wattwise.decide.base import PowerState, SiteForecast
from wattwise.errors import DeviceUnavailable
from wattwise.model.values import Action, ActionKind, ActionResult, Decision, DecisionStatus, Reading
from wattwise.sim.driver import TwinDriver
from wattwise.sim.runner import build_twin
from wattwise.sim.scenario import parse_scenario
from wattwise.store.duckdb_store import DuckDBStore


class BrokenPolicy:
    name = "broken"

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        raise ZeroDivisionError("model bug")


class ShedOnePolicy:
    name = "shed_one"

    def __init__(self, target: str) -> None:
        self.target = target

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        action = Action(kind=ActionKind.SERVICE_SHED, target_id=self.target, reason="test")
        return Decision(policy_name=self.name, status=DecisionStatus.OK, actions=(action,))


class RefusingDriver(TwinDriver):
    """The twin's readings, but the device refuses every command (or dies reading)."""

    dead = False

    async def read(self) -> list[Reading]:
        if self.dead:
            raise DeviceUnavailable("connection refused", device_id="twin")
        return await super().read()

    async def apply(self, action: Action) -> ActionResult:
        return ActionResult(command_id=action.command_id, ok=False, message="device says no")


def test_faults_become_statuses_and_the_loop_goes_on() -> None:
    sc = parse_scenario({"name": "faults", "site": "../examples/single-rack.yaml", "duration_s": 60})
    twin = build_twin(sc.model_copy(update={"source_file": "scenarios/x.yaml"}))
    driver = RefusingDriver(twin)
    needed = {d for s in twin.site.services for d in s.depends_on}
    low = next(s.id for s in twin.site.services if s.tier.value == "low" and s.id not in needed)
    policies = [BrokenPolicy(), ShedOnePolicy(low), GreedyAllocationPolicy()]
    a = assemble(twin.site, [driver], DuckDBStore(":memory:"), TwinClock(twin), Mode.ARMED, policies=policies)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    try:
        report = loop.run_until_complete(a.controller.tick(force_decide=True))
        assert "broken" in a.planner.policy_errors  # the model bug is a status...
        assert [v.phase for v in report.verdicts] == [Phase.FAILED]  # ...and the others still ran
        assert "device says no" in report.verdicts[0].message
        assert a.journal.entries()[-1].phase is Phase.FAILED
        driver.dead = True
        twin.step(1.0)
        report = loop.run_until_complete(a.controller.tick(force_decide=True))
        assert report.readings == 0
        assert "connection refused" in a.controller.driver_errors["twin"]
        driver.dead = False
        twin.step(1.0)
        report = loop.run_until_complete(a.controller.tick())
        assert report.accepted > 0
        assert a.controller.driver_errors == {}
    finally:
        loop.close()
