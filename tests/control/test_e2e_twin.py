"""The whole controller in the loop of the twin: a long outage with no generators.

The controller reads the twin through its driver, validates and stores readings, plans with
the real policies and acts through the interlocked actuator; the twin's own accounting judges
the outcome.
"""

from __future__ import annotations

from collections import Counter

import pytest

from wattwise.act.base import Mode, Phase
from wattwise.control.twin_run import ControlledRun, run_controlled
from wattwise.sim.runner import run_scenario
from wattwise.sim.scenario import Scenario, parse_scenario

OUTAGE_START_S = 120.0
OUTAGE_S = 1800.0


def _blackout() -> Scenario:
    return parse_scenario(
        {
            "name": "blackout",
            "generate": {"servers": 200, "servers_per_rack": 20, "racks_per_hall": 10, "seed": 4},
            "seed": 1,
            "duration_s": 2400,
            "overrides": {"ups-h1-a": {"battery_wh": 6000}, "ups-h1-b": {"battery_wh": 6000}},
            "events": [
                {"at_s": 60, "kind": "generator_fail", "target": "generator-a"},
                {"at_s": 60, "kind": "generator_fail", "target": "generator-b"},
                {"at_s": OUTAGE_START_S, "kind": "feed_loss", "target": "utility-a", "duration_s": OUTAGE_S},
                {"at_s": OUTAGE_START_S, "kind": "feed_loss", "target": "utility-b", "duration_s": OUTAGE_S},
            ],
        }
    )


@pytest.fixture(scope="module")
def armed() -> ControlledRun:
    return run_controlled(_blackout(), Mode.ARMED)


def test_critical_services_and_dependencies_stay_up_where_doing_nothing_fails(armed: ControlledRun) -> None:
    unmanaged = run_scenario(_blackout()).outcome
    managed = armed.result.outcome
    assert unmanaged.availability_by_tier["critical"] < 1.0  # the scenario really exhausts the batteries
    assert managed.availability_by_tier["critical"] == 1.0
    assert managed.dependency_violation_s == 0.0
    assert managed.priority_inversion_s == 0.0
    assert managed.breaker_trips == 0


def test_journal_tells_the_story_in_order(armed: ControlledRun) -> None:
    entries = armed.assembly.journal.entries(limit=10**6)
    sheds = [e for e in entries if e.kind == "service_shed" and e.phase is Phase.ACKED]
    restores = [e for e in entries if e.kind == "service_restore" and e.phase is Phase.ACKED]
    assert sheds, "nothing was shed during a battery-only outage"
    assert all(e.reason for e in sheds)
    assert min(e.t_s for e in sheds) >= OUTAGE_START_S
    assert restores
    assert max(e.t_s for e in restores) >= OUTAGE_START_S + OUTAGE_S  # restored after the utility returned
    # Every command was journaled as planned and sent before its answer.
    phases: dict[str, list[Phase]] = {}
    for e in entries:
        phases.setdefault(e.command_id, []).append(e.phase)
    for seq in phases.values():
        if Phase.ACKED in seq:
            assert seq.index(Phase.PLANNED) < seq.index(Phase.SENT) < seq.index(Phase.ACKED)


def test_everything_shed_is_back_at_the_end(armed: ControlledRun) -> None:
    twin = armed.assembly.controller.drivers[0].twin  # type: ignore[attr-defined]
    assert not twin.work.svc_shed.any()
    counts = Counter((str(e.phase), e.kind) for e in armed.assembly.journal.entries(limit=10**6))
    assert counts[("failed", "service_shed")] == 0


def test_levels_only_go_down_while_on_battery(armed: ControlledRun) -> None:
    """No shed/restore or throttle flapping during the outage: hysteresis in the policy."""
    entries = armed.assembly.journal.entries(limit=10**6)
    planned = [e for e in entries if e.phase is Phase.PLANNED and OUTAGE_START_S <= e.t_s < OUTAGE_START_S + OUTAGE_S]
    assert [e for e in planned if e.kind == "service_shed"], "the outage shed nothing: the test shows nothing"
    raised = [e for e in planned if e.kind == "service_restore"]
    levels: dict[str, float] = {}
    for e in planned:
        if e.kind == "throttle" and e.value is not None:
            if e.target_id in levels and e.value > levels[e.target_id] + 1e-9:
                raised.append(e)
            levels[e.target_id] = e.value
    assert not raised, f"raised on battery: {[(e.t_s, e.kind, e.target_id, e.value) for e in raised[:5]]}"
