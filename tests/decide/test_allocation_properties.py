"""Property tests of power-event allocation on random small sites (arrays, not YAML).

Each hypothesis example draws a seed and checks ``STATES`` random states built from it, so
``EXAMPLES × STATES`` states are checked per policy: 10 000 for the greedy policy and 10 000
for the MILP policy (HiGHS costs ~5 ms per tiny model), and the brute-force optimality check
enumerates every plan of sites with at most 4 services.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.decide.random_sites import random_forecast, random_state

from wattwise.decide.allocation import GreedyAllocationPolicy, MilpAllocationPolicy
from wattwise.decide.allocation_greedy import solve_greedy
from wattwise.decide.allocation_milp import solve_milp
from wattwise.decide.allocation_problem import OFF, AllocationProblem, inversion
from wattwise.decide.base import PowerState
from wattwise.model.values import ActionKind, Decision, DecisionStatus

STATES = 10
SEEDS = st.integers(0, 2**32 - 1)
FAST = settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
TOL = 1e-6


def plan_of(d: Decision, state: PowerState, p: AllocationProblem) -> np.ndarray:
    """Level index per service after applying the decision's actions to the state."""
    assert state.service_level_frac is not None
    level = state.service_level_frac.copy()
    for a in d.actions:
        if a.kind in (ActionKind.SERVICE_SHED, ActionKind.SERVICE_RESTORE, ActionKind.THROTTLE):
            level[state.index.service_ids.index(a.target_id)] = a.value
    idx = np.full(p.n_service, OFF, dtype=np.int64)
    for s in range(p.n_service):
        if level[s] > 0:
            hits = np.flatnonzero(np.abs(p.levels_frac[s, : p.n_levels[s]] - level[s]) < 1e-9)
            assert len(hits) == 1, f"level {level[s]} of service {s} is not an allowed level"
            idx[s] = hits[0]
    return idx


def check_rules(p: AllocationProblem, idx: np.ndarray) -> None:
    on = idx != OFF
    assert (on[p.dep_dst] | ~on[p.dep_src]).all(), "a running service lost a dependency"
    assert on[p.forced].all(), "a critical service (or a dependency of one) was shed"
    for t in range(4):
        assert not inversion(p.rank, idx, t), f"priority inversion at tier {t}"


def check_order(d: Decision, state: PowerState) -> None:
    ix = state.index
    pos = {a.target_id: (i, a) for i, a in enumerate(d.actions) if a.kind is ActionKind.SERVICE_SHED}
    res = {a.target_id: a for a in d.actions if a.kind is ActionKind.SERVICE_RESTORE}
    for s, dep in zip(ix.dep_src.tolist(), ix.dep_dst.tolist(), strict=True):
        a, b = ix.service_ids[s], ix.service_ids[dep]
        if a in pos and b in pos:  # dependant shed first
            assert pos[a][0] < pos[b][0]
            assert pos[a][1].not_before_s <= pos[b][1].not_before_s
        if a in res and b in res:  # dependency restored first
            assert res[b].not_before_s < res[a].not_before_s


def check_sequence(d: Decision, state: PowerState, p: AllocationProblem) -> None:
    """Layers: dependants before dependencies; a throttle after every less important tier's
    sheds; outlets in the layer after the last shed (their servers' services all shed by then)."""
    ix = state.index
    shed = {a.target_id: a.sequence for a in d.actions if a.kind is ActionKind.SERVICE_SHED}
    for s, dep in zip(ix.dep_src.tolist(), ix.dep_dst.tolist(), strict=True):
        a, b = ix.service_ids[s], ix.service_ids[dep]
        if a in shed and b in shed:
            assert shed[a] < shed[b], f"{a} depends on {b} but is not shed in an earlier layer"
    rank = {ix.service_ids[i]: int(p.rank[i]) for i in range(p.n_service)}
    for a in d.actions:
        lowered = a.previous_value is not None and a.value is not None and a.value < a.previous_value
        if a.kind is ActionKind.THROTTLE and lowered:
            lower = [q for sv, q in shed.items() if rank[sv] > rank[a.target_id]]
            assert all(a.sequence > q for q in lower), "a throttle before a less important tier's shed"
    bus_server = {b: j for j, b in enumerate(ix.server_bus.tolist()) if b >= 0}
    servers_of: dict[str, set[int]] = {}
    for k, o in enumerate(ix.psu_outlet_ids):
        j = bus_server.get(int(ix.psu_bus[k]))
        if j is not None:
            servers_of.setdefault(o, set()).add(j)
    on_server: dict[int, set[str]] = {}
    for w_srv, w_svc in zip(ix.wl_server.tolist(), ix.wl_service.tolist(), strict=True):
        on_server.setdefault(w_srv, set()).add(ix.service_ids[w_svc])
    last = max(shed.values(), default=-1)
    for a in d.actions:
        if a.kind is ActionKind.OUTLET_OFF:
            assert a.sequence == last + 1, f"outlet {a.target_id}: layer {a.sequence}, last shed layer {last}"
            for j in servers_of.get(a.target_id, ()):
                assert all(sv not in shed or shed[sv] < a.sequence for sv in on_server.get(j, ()))


def check_decision(policy: GreedyAllocationPolicy, state: PowerState, fc: object) -> None:
    d = policy.decide(state, fc)  # type: ignore[arg-type]
    p = policy.problem(state, fc)  # type: ignore[arg-type]
    kinds = {a.kind for a in d.actions}
    reduced = kinds & {ActionKind.SERVICE_SHED, ActionKind.THROTTLE, ActionKind.OUTLET_OFF}
    if not reduced and not len(p.with_spares_on().violations(np.zeros(p.n_service, np.int64))):
        p = p.with_spares_on()
    idx = plan_of(d, state, p)
    check_rules(p, idx)
    check_order(d, state)
    check_sequence(d, state, p)
    if d.status in (DecisionStatus.OK, DecisionStatus.SKIPPED):
        assert (p.excess(idx) <= TOL * (1 + np.abs(p.rhs))).all(), "a limit is exceeded in an OK plan"
    else:
        assert d.status is DecisionStatus.INFEASIBLE
        assert d.reasons
        assert d.reasons[0].startswith(("no plan meets every rule", "MILP"))


@FAST
@given(seed=SEEDS)
def test_greedy_allocation_keeps_every_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    policy = GreedyAllocationPolicy()
    for _ in range(STATES):
        state = random_state(rng, curves=False)
        check_decision(policy, state, random_forecast(rng, state))


@FAST
@given(seed=SEEDS)
def test_milp_allocation_keeps_every_rule_and_beats_greedy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    policy = MilpAllocationPolicy(time_limit_s=5.0, mip_rel_gap=0.0)
    for _ in range(STATES):
        state = random_state(rng, curves=False)
        fc = random_forecast(rng, state)
        check_decision(policy, state, fc)
        p = policy.problem(state, fc)
        greedy = solve_greedy(p, state.index.service_dep_depth)
        res = solve_milp(p, time_limit_s=5.0, mip_rel_gap=0.0)
        if not p.violations(greedy):
            assert res.level_idx is not None, "greedy found a plan the MILP missed"
        if res.level_idx is not None and res.status == 0:
            assert not p.violations(res.level_idx)
            if not p.violations(greedy):
                assert p.value(res.level_idx) >= p.value(greedy) - TOL


def brute_force_best(p: AllocationProblem) -> float | None:
    options = [[OFF, *range(int(k))] for k in p.n_levels]
    best = None
    for combo in itertools.product(*options):
        idx = np.array(combo, dtype=np.int64)
        if not p.violations(idx):
            v = p.value(idx)
            best = v if best is None else max(best, v)
    return best


@SLOW
@given(seed=SEEDS)
def test_milp_is_optimal_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    checked = 0
    while checked < 3:
        state = random_state(rng, curves=False)
        p = GreedyAllocationPolicy().problem(state, random_forecast(rng, state))
        if p.n_service > 4:
            continue
        checked += 1
        best = brute_force_best(p)
        res = solve_milp(p, time_limit_s=5.0, mip_rel_gap=0.0)
        if best is None:
            assert res.level_idx is None or p.violations(res.level_idx)
        else:
            assert res.level_idx is not None
            assert abs(p.value(res.level_idx) - best) <= TOL
