"""Scenario tests in the digital twin: the policies in the loop, judged by the twin's outcome.

A controller hook reads the twin's arrays into a :class:`PowerState` every few simulated
seconds, asks a policy, and applies its actions (the twin honours ``not_before_s``). Each
scenario is also run without the policy, so the test shows the situation is a real one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tests.decide.twin_adapter import degradation_forecast, server_ac_w, twin_power_state

from wattwise.decide.allocation import GreedyAllocationPolicy
from wattwise.decide.base import SiteForecast
from wattwise.decide.index import SiteIndex
from wattwise.decide.load_sharing import CurveLoadSharingPolicy
from wattwise.decide.migration import PredictiveMigrationPolicy
from wattwise.model.values import Action, ActionKind, Decision
from wattwise.sim.runner import RunResult, build_twin, run_scenario
from wattwise.sim.scenario import Scenario, parse_scenario
from wattwise.sim.twin import Twin

UPS_IDS = ("ups-h1-a", "ups-h1-b", "ups-h2-a", "ups-h2-b", "ups-h3-a", "ups-h3-b")


def outage_scenario() -> Scenario:
    """Both utilities lost for 20 min, both generators fail: batteries (3 kWh each) alone."""
    return parse_scenario(
        {
            "name": "outage-ride-through",
            "generate": {"servers": 400, "servers_per_rack": 20, "racks_per_hall": 10, "seed": 5},
            "seed": 5,
            "duration_s": 1800,
            "overrides": {u: {"battery_wh": 3000.0} for u in UPS_IDS},
            "events": [
                {"at_s": 50, "kind": "generator_fail", "target": "generator-a"},
                {"at_s": 50, "kind": "generator_fail", "target": "generator-b"},
                {"at_s": 60, "kind": "feed_loss", "target": "utility-a", "duration_s": 1200},
                {"at_s": 60, "kind": "feed_loss", "target": "utility-b", "duration_s": 1200},
            ],
        }
    )


def run_with(
    sc: Scenario, decide: Any, every_s: float = 5.0
) -> tuple[RunResult, Twin, list[tuple[float, Action, bool]]]:
    twin = build_twin(sc)
    ix = SiteIndex.from_site(twin.site)
    log: list[tuple[float, Action, bool]] = []

    def hook(tw: Twin, t_s: float) -> None:
        d: Decision = decide(ix, tw)
        for a in d.actions:
            log.append((t_s, a, tw.apply(a).ok))

    res = run_scenario(sc, hook if decide is not None else None, hook_every_s=every_s, twin=twin)
    return res, twin, log


@pytest.mark.slow
def test_feed_loss_keeps_critical_up_and_restores_in_order() -> None:
    sc = outage_scenario()
    baseline, _, _ = run_with(sc, None)
    assert baseline.outcome.availability_by_tier["critical"] < 0.9  # the batteries alone fail critical

    policy = GreedyAllocationPolicy()
    res, twin, log = run_with(sc, lambda ix, tw: policy.decide(twin_power_state(ix, tw), SiteForecast()))
    o = res.outcome
    assert o.availability_by_tier["critical"] == 1.0
    assert o.dependency_violation_s == 0.0
    assert o.priority_inversion_s == 0.0
    assert all(ok for _, _, ok in log)
    assert any(a.kind is ActionKind.SERVICE_SHED for _, a, _ in log)
    # Everything is back at the end, restored in dependency order after the power returned.
    assert not twin.work.svc_shed.any()
    assert twin.work.svc_up.all()
    first: dict[str, float] = {}
    for t_s, a, _ in log:
        if a.kind is ActionKind.SERVICE_RESTORE and t_s >= 1260.0:
            first.setdefault(a.target_id, a.not_before_s)
    ix = SiteIndex.from_site(twin.site)
    pairs = 0
    for s, d in zip(ix.dep_src.tolist(), ix.dep_dst.tolist(), strict=True):
        a, b = ix.service_ids[s], ix.service_ids[d]
        if a in first and b in first:
            assert first[b] < first[a], f"{a} restored before its dependency {b}"
            pairs += 1
    assert pairs > 0


def degradation_scenario() -> Scenario:
    return parse_scenario(
        {
            "name": "psu-degradation",
            "generate": {"servers": 120, "servers_per_rack": 20, "racks_per_hall": 10, "seed": 3},
            "seed": 3,
            "duration_s": 1500,
            "events": [
                {"at_s": 60, "kind": "psu_degrade", "target": "r00003-s1-psu1", "rate_per_s": 0.002},
                {"at_s": 60, "kind": "psu_degrade", "target": "r00004-s2-psu2", "rate_per_s": 0.0015},
                {"at_s": 60, "kind": "psu_degrade", "target": "rl-r00001-rect1", "rate_per_s": 0.0015},
            ],
        }
    )


@pytest.mark.slow
def test_psu_degradation_unloads_before_failure_without_bus_drop() -> None:
    sc = degradation_scenario()
    policy = CurveLoadSharingPolicy(failure_prob_threshold=0.5)
    degraded = ("r00003-s1-psu1", "r00004-s2-psu2", "rl-r00001-rect1")
    unloaded_at: dict[str, float] = {}
    failed_at: dict[str, float] = {}

    def decide(ix: SiteIndex, tw: Twin) -> Decision:
        for p in degraded:
            i = ix.psu_ids.index(p)
            if tw.psu.failed[i]:
                failed_at.setdefault(p, tw.t_s)
            elif tw.psu.output_w[i] < 1.0:
                unloaded_at.setdefault(p, tw.t_s)
        return policy.decide(twin_power_state(ix, tw), degradation_forecast(tw, horizon_s=600.0))

    res, twin, log = run_with(sc, decide)
    o = res.outcome
    assert set(failed_at) == set(degraded)  # every degraded unit did fail in the run
    for p in degraded:
        assert unloaded_at[p] < failed_at[p], f"{p} still carried load when it failed"
    assert o.server_down_s == 0.0
    assert o.disrupted_workloads == 0
    assert o.psu_ocp_trips == 0
    assert all(ok for _, _, ok in log)


def overload_scenario() -> Scenario:
    """A site-wide surge that the PDUs of rack r00004 (breakers overridden to 4 A) cannot carry."""
    return parse_scenario(
        {
            "name": "forecast-overload",
            "generate": {"servers": 120, "servers_per_rack": 20, "racks_per_hall": 10, "seed": 4},
            "seed": 4,
            "duration_s": 1200,
            "overrides": {"pdu-r00004-a": {"breaker_a": 4.0}, "pdu-r00004-b": {"breaker_a": 4.0}},
            "events": [{"at_s": 400, "kind": "workload_surge", "target": "*", "factor": 2.5, "duration_s": 700}],
        }
    )


def surge_forecast(
    ix: SiteIndex, tw: Twin, surge_at_s: float = 400.0, factor: float = 2.5, horizon_s: float = 600.0
) -> SiteForecast:
    """Stand-in for the demand forecaster: it sees the surge coming within its horizon (AC W)."""
    power = tw.srv.power_w
    coming = tw.t_s + horizon_s >= surge_at_s and tw.t_s < surge_at_s
    dc = np.minimum(ix.server_idle_w + (power - ix.server_idle_w) * factor, ix.server_peak_w) if coming else power
    return SiteForecast(horizon_s=horizon_s, server_power_upper_w=server_ac_w(ix, tw, np.maximum(dc, power)))


@pytest.mark.slow
def test_forecast_overload_migrates_before_any_cap() -> None:
    sc = overload_scenario()
    baseline, _, _ = run_with(sc, None)
    hot = [k for k, v in baseline.outcome.overload_s_by_breaker.items() if v > 0]
    assert any("r00004" in k for k in hot) or baseline.outcome.breaker_trips  # a real overload without policy

    policy = PredictiveMigrationPolicy(max_migrations=20)
    res, _, log = run_with(
        sc, lambda ix, tw: policy.decide(twin_power_state(ix, tw), surge_forecast(ix, tw)), every_s=10.0
    )
    o = res.outcome
    kinds = [(t, a.kind) for t, a, ok in log if ok]
    migrations = [t for t, k in kinds if k is ActionKind.WORKLOAD_MIGRATE]
    caps = [t for t, k in kinds if k is ActionKind.POWER_CAP]
    assert migrations, "nothing migrated"
    assert min(migrations) < 400.0, "migration started only after the surge"
    assert not caps or min(migrations) < min(caps)
    assert not any(v > 0 for k, v in o.overload_s_by_breaker.items() if "r00004" in k)
    assert not o.breaker_trips
