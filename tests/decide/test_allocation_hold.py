"""Hysteresis of the allocation (``wattwise.decide.allocation_hold``) on random small sites."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.decide.random_sites import random_forecast, random_state
from tests.decide.test_allocation_properties import check_rules

from wattwise.decide.allocation import GreedyAllocationPolicy
from wattwise.decide.allocation_greedy import solve_greedy
from wattwise.decide.allocation_hold import hold_raises, state_level_idx, touched_rows
from wattwise.decide.base import SiteForecast
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.values import ActionKind

EXAMPLES = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
EPS = 1e-9


@EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), margin=st.sampled_from([0.0, 0.05, 0.3]))
def test_hold_only_lowers_and_keeps_every_rule(seed: int, margin: float) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(5):
        state = random_state(rng, curves=False)
        p = GreedyAllocationPolicy().problem(state, random_forecast(rng, state))
        assert state.service_level_frac is not None
        now = state.service_level_frac
        plan = solve_greedy(p, state.index.service_dep_depth)
        held = hold_raises(p, plan, now, margin)
        assert (p.level_frac(held) <= p.level_frac(plan) + EPS).all(), "the hold raised a service"
        assert (held[p.forced] == plan[p.forced]).all(), "a critical service was held back"
        if not p.violations(plan):
            check_rules(p, held)
            assert not p.violations(held)
        raised = (p.level_frac(held) > now + EPS) & ~p.forced
        touched = touched_rows(p)
        on_battery = np.asarray(touched[p.n_power_rows :, :].sum(axis=0)).ravel() > 0
        assert not (raised & on_battery).any(), "raised a service whose UPS is on battery"
        free = p.rhs - p.loads(held)
        need = margin * np.where(np.isfinite(p.rhs), np.abs(p.rhs), 0.0)
        for s in np.flatnonzero(raised).tolist():
            rows = touched[:, s].nonzero()[0]
            assert (free[rows] >= need[rows] - 1e-6).all(), f"service {s} raised without margin"


def test_state_level_index_rounds_down_to_an_allowed_level() -> None:
    ix_state = random_state(np.random.default_rng(7), curves=False)
    p = GreedyAllocationPolicy().problem(ix_state, SiteForecast())
    s = int(np.argmax(p.n_levels))
    k = int(p.n_levels[s]) - 1
    frac = np.zeros(p.n_service)
    frac[s] = p.levels_frac[s, k] + 1e-3  # just above the lowest level
    got = state_level_idx(p, frac)
    assert got[s] == k
    assert (got[np.arange(p.n_service) != s] == -1).all()  # level 0 → off


def _outage_state() -> tuple[object, GreedyAllocationPolicy]:
    from wattwise.decide.base import PowerState
    from wattwise.decide.index import SiteIndex

    ix = SiteIndex.from_site(generate_site(SiteSpec(servers=40, servers_per_rack=10, services=8, seed=3)))
    outage = PowerState(
        index=ix, server_power_w=ix.server_idle_w, feed_available=[False] * 4, ups_charge_frac=[1.0] * 2
    )
    return outage, GreedyAllocationPolicy()


def test_a_shed_service_stays_shed_on_battery_and_returns_with_the_utility() -> None:
    outage, policy = _outage_state()
    ix = outage.index  # type: ignore[attr-defined]
    low = int(np.argmax(ix.service_eff_rank))
    assert ix.service_eff_rank[low] > 0
    levels = np.ones(len(ix.service_ids))
    levels[low] = 0.0
    # Full batteries, servers idle: everything fits, yet the shed service is not restored on battery.
    on_battery = outage.with_(service_level_frac=levels)  # type: ignore[attr-defined]
    d = policy.decide(on_battery, SiteForecast())
    assert not [a for a in d.actions if a.kind is ActionKind.SERVICE_RESTORE]
    # The same site with the utility back restores it.
    back = on_battery.with_(feed_available=None)
    d = policy.decide(back, SiteForecast())
    assert [a.target_id for a in d.actions if a.kind is ActionKind.SERVICE_RESTORE] == [ix.service_ids[low]]
