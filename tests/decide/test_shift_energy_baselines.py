"""Properties of event-processor shifting, adaptive thresholds, deferral and the baselines."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.decide.random_sites import random_forecast, random_state

from wattwise.decide.allocation_problem import build_problem
from wattwise.decide.base import SiteForecast
from wattwise.decide.baselines import (
    EqualLoadSharingPolicy,
    NoMigrationPolicy,
    NutShutdownAllPolicy,
    ReactiveThresholdPolicy,
    SeedGreedyPolicy,
)
from wattwise.decide.energy import CostAwareDeferralPolicy, deferrable
from wattwise.decide.event_shift import (
    DisruptionShiftPolicy,
    ProcessorState,
    ShiftOutcomes,
    ShiftThreshold,
    adapt_threshold,
)
from wattwise.model.values import ActionKind, DecisionStatus

SEEDS = st.integers(0, 2**32 - 1)
FAST = settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def random_processors(rng: np.random.Generator) -> tuple[ProcessorState, SiteForecast]:
    n_p = int(rng.integers(1, 12))
    n_k = int(rng.integers(0, 40))
    st_ = ProcessorState(
        processor_ids=tuple(f"ep{i}" for i in range(n_p)),
        processor_server=rng.integers(0, max(1, n_p // 2 + 1), n_p),
        processor_load_frac=rng.uniform(0.0, 0.9, n_p),
        processor_available=rng.random(n_p) < 0.9,
        partition_ids=tuple(f"p{i}" for i in range(n_k)),
        partition_owner=rng.integers(0, n_p, n_k),
        partition_rank=rng.integers(0, 4, n_k),
        partition_dependants=rng.integers(0, 5, n_k),
        partition_state_gib=rng.uniform(0.0, 5.0, n_k),
        cluster_load_frac=float(rng.uniform(0, 1)),
        congestion_frac=float(rng.uniform(0, 1)),
        threshold=ShiftThreshold(base_frac=float(rng.uniform(0.3, 0.9))),
    )
    return st_, SiteForecast(processor_failure_prob=rng.random(n_p) ** 2)


@FAST
@given(seed=SEEDS)
def test_shift_moves_only_to_healthy_unloaded_processors(seed: int) -> None:
    rng = np.random.default_rng(seed)
    policy = DisruptionShiftPolicy(max_load_frac=float(rng.uniform(0.5, 1.0)), max_moves=int(rng.integers(1, 30)))
    for _ in range(10):
        state, fc = random_processors(rng)
        assert fc.processor_failure_prob is not None
        assert state.partition_load_frac is not None
        d = policy.decide(state, fc)
        thr = state.threshold.effective(state.cluster_load_frac, state.congestion_frac)
        load = state.processor_load_frac.copy()
        moves = [a for a in d.actions if a.kind is ActionKind.PARTITION_MOVE]
        assert len(moves) <= policy.max_moves
        assert len({a.target_id for a in moves}) == len(moves)
        for a in moves:
            k, src = state.partition_ids.index(a.target_id), state.processor_ids.index(a.source_id or "")
            dst = state.processor_ids.index(a.dest_id or "")
            assert state.partition_owner[k] == src
            assert fc.processor_failure_prob[src] >= thr
            assert fc.processor_failure_prob[dst] < thr
            assert state.processor_server[dst] != state.processor_server[src]
            load[dst] += state.partition_load_frac[k]
            load[src] -= state.partition_load_frac[k]
        touched = {state.processor_ids.index(a.dest_id or "") for a in moves}
        assert all(load[i] <= policy.max_load_frac + 1e-9 for i in touched)
        left = int((fc.processor_failure_prob[state.partition_owner] >= thr).sum()) - len(moves)
        assert (left > 0) == (d.status is DecisionStatus.INFEASIBLE)


@FAST
@given(outcomes=st.lists(st.tuples(*[st.integers(0, 50)] * 4), max_size=60), base=st.floats(0.3, 0.9))
def test_threshold_stays_bounded_and_moves_the_right_way(outcomes: list[tuple[int, ...]], base: float) -> None:
    t = ShiftThreshold(base_frac=base)
    for c, u, h, m in outcomes:
        new = adapt_threshold(t, ShiftOutcomes(confirmed=c, unnecessary=u, harmful=h, missed=m))
        assert t.min_frac <= new.base_frac <= t.max_frac
        net = u + 2 * h - (2 * m + 0.5 * c)
        if net > 0:
            assert new.base_frac >= t.base_frac
        if net < 0:
            assert new.base_frac <= t.base_frac
        for load in (0.0, 0.5, 1.0):
            assert new.min_frac <= new.effective(load, 1.0) <= new.max_frac
        t = new


def test_threshold_cannot_drift_to_never_or_always() -> None:
    t = ShiftThreshold()
    for _ in range(1000):
        t = adapt_threshold(t, ShiftOutcomes(unnecessary=10))
    assert t.base_frac == t.max_frac < 1.0
    for _ in range(1000):
        t = adapt_threshold(t, ShiftOutcomes(missed=10))
    assert t.base_frac == t.min_frac > 0.0


@FAST
@given(seed=SEEDS)
def test_deferral_never_breaks_dependencies_or_restarts_in_an_event(seed: int) -> None:
    rng = np.random.default_rng(seed)
    policy = CostAwareDeferralPolicy()
    for _ in range(10):
        state = random_state(rng, curves=False)
        fc = random_forecast(rng, state)
        ix = state.index
        d = policy.decide(state, fc)
        ok = deferrable(ix)
        assert not (ok & ~ix.service_flexible).any()
        assert not (~ok[ix.dep_src] & ok[ix.dep_dst]).any(), "deferrable service needed by one that stays"
        for a in d.actions:
            if a.kind is ActionKind.WORKLOAD_DEFER:
                assert ok[ix.wl_service[ix.wl_ids.index(a.target_id)]]
        if any(a.kind is ActionKind.SERVICE_RESTORE for a in d.actions):
            p = build_problem(state, fc)
            assert not p.violations(np.zeros(p.n_service, dtype=np.int64))


@FAST
@given(seed=SEEDS)
def test_baselines_always_return_a_decision(seed: int) -> None:
    rng = np.random.default_rng(seed)
    policies = [
        NutShutdownAllPolicy(),
        ReactiveThresholdPolicy(),
        SeedGreedyPolicy(),
        NoMigrationPolicy(),
        EqualLoadSharingPolicy(),
    ]
    for _ in range(10):
        state = random_state(rng)
        fc = random_forecast(rng, state)
        for p in policies:
            d = p.decide(state, fc)
            assert d.policy_name == p.name
            assert d.status in (DecisionStatus.OK, DecisionStatus.SKIPPED)
