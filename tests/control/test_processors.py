"""Event-processor shifting in the controller: heartbeat detectors fitted on a warm-up, partitions moved."""

from __future__ import annotations

import numpy as np
import pytest

from wattwise.act.base import Mode, Phase
from wattwise.control.loop import LatestValues
from wattwise.control.processors import ProcessorWatch
from wattwise.control.twin_run import ControlledRun, run_controlled
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.sim.scenario import Scenario, parse_scenario

UNSTABLE = "ep-0001"


def _pause() -> Scenario:
    return parse_scenario(
        {
            "name": "pausing-processor",
            "generate": {"servers": 60, "servers_per_rack": 10, "racks_per_hall": 3, "event_processors": 6, "seed": 2},
            "seed": 3,
            "duration_s": 1200,
            "events": [
                {"at_s": 400, "kind": "processor_unstable", "target": UNSTABLE, "mode": "pause", "severity": 0.8,
                 "duration_s": 600, "shape": 4},
            ],
        }
    )  # fmt: skip


@pytest.fixture(scope="module")
def runs() -> dict[Mode, ControlledRun]:
    return {m: run_controlled(_pause(), m) for m in (Mode.OBSERVE, Mode.ARMED)}


def test_partitions_leave_the_pausing_processor_and_sla_misses_fall(runs: dict[Mode, ControlledRun]) -> None:
    armed = runs[Mode.ARMED]
    moves = [
        e for e in armed.assembly.journal.entries(limit=10**6) if e.kind == "partition_move" and e.phase is Phase.ACKED
    ]
    assert moves, "no partition was moved off the pausing processor"
    assert {m.reason.split()[0] for m in moves} == {UNSTABLE}  # "<source> PFP p >= threshold"
    assert all(m.t_s >= 400.0 for m in moves)  # nothing moves before the instability starts
    watch = armed.assembly.planner.processors
    assert watch is not None
    owners = {
        watch.processor_ids[o] for o in watch.partition_owner[[watch.partition_ids.index(m.target_id) for m in moves]]
    }
    assert UNSTABLE not in owners
    assert armed.result.outcome.sla_violation_s < 0.5 * runs[Mode.OBSERVE].result.outcome.sla_violation_s


def test_observe_mode_moves_nothing(runs: dict[Mode, ControlledRun]) -> None:
    entries = runs[Mode.OBSERVE].assembly.journal.entries(limit=10**6)
    assert not [e for e in entries if e.kind == "partition_move" and e.phase is Phase.ACKED]
    assert runs[Mode.OBSERVE].result.outcome.sla_violation_s > 0  # the pause really hurts


def test_watch_waits_for_its_warm_up_and_names_a_processor_it_cannot_learn() -> None:
    site = generate_site(SiteSpec(servers=20, servers_per_rack=10, seed=1))
    watch = ProcessorWatch(site, [s.id for s in site.servers], warmup_s=30.0, min_samples=10)
    pid, other = watch.processor_ids[0], watch.processor_ids[1]
    latest = LatestValues()
    for t in range(0, 40):
        latest.values[(pid, "heartbeat_gap_s")] = (float(t % 2) * 0.5, float(t))
        latest.values[(other, "heartbeat_gap_s")] = (float("nan"), float(t))  # never a visible beat
        watch.observe(latest)
        if t < 30:
            assert watch.detectors[0] is None
    assert watch.detectors[0] is not None
    assert other in watch.fit_errors
    assert watch.failure_prob(50.0)[1] == 0.0
    # silence: the fitted processor's gap grows and its failure probability with it
    for t in range(40, 50):
        latest.values[(pid, "heartbeat_gap_s")] = (float(t - 39), float(t))
        watch.observe(latest)
    assert watch.failure_prob(50.0)[0] > 0.9
    assert np.all((watch.failure_prob(50.0) >= 0.0) & (watch.failure_prob(50.0) <= 1.0))
