"""Dry-run equivalence: what ``dry-run`` journals is exactly what ``armed`` sends.

Both runs see the same twin (same scenario and seed), so until the first command changes the
site their states are identical; the first decision that acts must list the same commands, in
the same order, in both modes.
"""

from __future__ import annotations

import pytest

from wattwise.act.base import JournalEntry, Mode, Phase
from wattwise.control.twin_run import run_controlled
from wattwise.decide.allocation import MilpAllocationPolicy
from wattwise.sim.scenario import Scenario, parse_scenario


def _outage() -> Scenario:
    return parse_scenario(
        {
            "name": "outage-start",
            "generate": {"servers": 200, "servers_per_rack": 20, "racks_per_hall": 10, "seed": 4},
            "seed": 3,
            "duration_s": 400,
            "overrides": {"ups-h1-a": {"battery_wh": 2500}, "ups-h1-b": {"battery_wh": 2500}},
            "events": [
                {"at_s": 60, "kind": "generator_fail", "target": "generator-a"},
                {"at_s": 60, "kind": "generator_fail", "target": "generator-b"},
                {"at_s": 120, "kind": "feed_loss", "target": "utility-a", "duration_s": 1800},
                {"at_s": 120, "kind": "feed_loss", "target": "utility-b", "duration_s": 1800},
            ],
        }
    )


def _first_tick(entries: list[JournalEntry], phase: Phase) -> tuple[float, list[tuple[str, str, float | None]]]:
    hits = [e for e in entries if e.phase is phase]
    assert hits, f"no {phase} entries"
    t0 = min(e.t_s for e in hits)
    return t0, [(e.kind, e.target_id, e.value) for e in hits if e.t_s == t0]


@pytest.mark.parametrize(
    ("policies", "first_kind"),
    [
        (None, "psu_setpoint"),  # the default set: load sharing parks PSUs on mains first
        ([MilpAllocationPolicy(time_limit_s=0.5)], "service_shed"),  # allocation alone: the outage's sheds
    ],
    ids=["default-policies", "allocation-only"],
)
def test_dry_run_lists_exactly_what_armed_sends(policies: list[MilpAllocationPolicy] | None, first_kind: str) -> None:
    armed = run_controlled(_outage(), Mode.ARMED, policies=policies).assembly.journal.entries(limit=10**6)
    dry = run_controlled(_outage(), Mode.DRY_RUN, policies=policies).assembly.journal.entries(limit=10**6)
    t_armed, sent = _first_tick(armed, Phase.SENT)
    t_dry, would = _first_tick(dry, Phase.DRY_RUN)
    assert t_armed == t_dry
    assert sent == would
    assert any(kind == first_kind for kind, _, _ in sent)
    assert not [e for e in dry if e.phase in (Phase.SENT, Phase.ACKED)]  # dry-run never sends
