"""Property tests of predictive migration, rebalance and cooling on random sites.

1 000 examples × 10 states = 10 000 random states for each of migration, rebalance and cooling.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.decide.random_sites import random_forecast, random_state

from wattwise.decide.base import PowerState, SiteForecast
from wattwise.decide.cooling import HeatFollowingCoolingPolicy
from wattwise.decide.migration import PredictiveMigrationPolicy, RebalancePolicy, build_limits
from wattwise.model.values import ActionKind, Decision, DecisionStatus

STATES = 10
SEEDS = st.integers(0, 2**32 - 1)
FAST = settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def check_migration(policy: PredictiveMigrationPolicy, d: Decision, state: PowerState, fc: SiteForecast) -> None:
    ix = state.index
    lim = build_limits(state, fc, policy.failure_prob_threshold)
    target = (1.0 - policy.margin_frac) * lim.capacity_w
    before_ok = lim.load_w <= target + 1e-6
    server_w = lim.server_w.copy()
    moves = [a for a in d.actions if a.kind is ActionKind.WORKLOAD_MIGRATE]
    assert len(moves) <= policy.max_migrations
    assert len({a.target_id for a in moves}) == len(moves), "a workload moved twice"
    failing = (
        fc.server_failure_prob >= policy.failure_prob_threshold
        if fc.server_failure_prob is not None
        else np.zeros(len(ix.server_ids), bool)
    )
    for a in moves:
        assert a.source_id is not None
        assert a.dest_id is not None
        w, src, dst = ix.wl_ids.index(a.target_id), ix.server_ids.index(a.source_id), ix.server_ids.index(a.dest_id)
        assert ix.wl_server[w] == src
        assert ix.wl_migratable[w]
        assert ix.server_rack[dst] != ix.server_rack[src], "target on the same rack"
        assert not failing[dst], "target predicted to fail"
        assert "make-before-break" in a.reason
        server_w[src] -= a.value or 0.0
        server_w[dst] += a.value or 0.0
    for a in d.actions:
        if a.kind is ActionKind.POWER_CAP:
            s = ix.server_ids.index(a.target_id)
            server_w[s] = min(server_w[s], a.value or 0.0)
    after = lim.matrix @ server_w
    made = before_ok & (after > target + 1e-6)
    assert not made.any(), f"migration put {[lim.names[i] for i in np.flatnonzero(made)]} at risk"
    assert (server_w <= np.maximum(ix.server_peak_w, lim.server_w) + 1e-6).all(), "target above its peak power"


@FAST
@given(seed=SEEDS)
def test_migration_never_creates_a_new_risk(seed: int) -> None:
    rng = np.random.default_rng(seed)
    policy = PredictiveMigrationPolicy(max_migrations=int(rng.integers(1, 8)))
    for _ in range(STATES):
        state = random_state(rng, curves=False)
        fc = random_forecast(rng, state)
        d = policy.decide(state, fc)
        check_migration(policy, d, state, fc)
        if d.status is DecisionStatus.SKIPPED:
            assert not d.actions


@FAST
@given(seed=SEEDS)
def test_rebalance_never_creates_a_new_hot_spot(seed: int) -> None:
    rng = np.random.default_rng(seed)
    policy = RebalancePolicy(high_frac=float(rng.uniform(0.5, 0.95)))
    for _ in range(STATES):
        state = random_state(rng, curves=False)
        fc = SiteForecast()
        check_migration(policy, policy.decide(state, fc), state, fc)


@FAST
@given(seed=SEEDS)
def test_cooling_isolates_leaks_and_acts_on_every_shortfall(seed: int) -> None:
    rng = np.random.default_rng(seed)
    policy = HeatFollowingCoolingPolicy()
    for _ in range(STATES):
        state = random_state(rng, curves=False)
        fc = random_forecast(rng, state)
        d = policy.decide(state, fc)
        assert state.racklet_leak is not None
        isolated = {a.target_id for a in d.actions if a.kind is ActionKind.COOLING_ISOLATE}
        assert isolated == {r for r, leak in zip(state.index.racklet_ids, state.racklet_leak, strict=True) if leak}
        for a in d.actions:
            if a.kind is ActionKind.COOLING_SETPOINT:
                assert policy.min_setpoint_c <= (a.value or 0.0) <= policy.max_setpoint_c
        short = any("heat above cooling" in r and not r.startswith("0 ") for r in d.reasons)
        if short:
            acted = {a.kind for a in d.actions} & {ActionKind.WORKLOAD_MIGRATE, ActionKind.POWER_CAP}
            assert acted or d.status is DecisionStatus.INFEASIBLE
