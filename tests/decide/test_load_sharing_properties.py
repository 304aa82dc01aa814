"""Property tests of PSU load sharing on random sites with the real efficiency curves.

1 000 examples × 10 states = 10 000 random states for the limits/N+1/risk property; the
loss-vs-equal-sharing property checks 3 000.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import DATASETS, need
from tests.decide.random_sites import (
    PFE_EFF_FRAC,
    PFE_LOAD_FRAC,
    TITANIUM_EFF_FRAC,
    TITANIUM_LOAD_FRAC,
    random_forecast,
    random_state,
)

from wattwise.decide.base import PowerState, SiteForecast
from wattwise.decide.load_sharing import CurveLoadSharingPolicy, bus_inputs, current_output_w, equal_share_output_w
from wattwise.model.values import Decision, DecisionStatus

STATES = 10
FAST = settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def final_outputs(d: Decision, state: PowerState, bus_w: np.ndarray) -> np.ndarray:
    out = current_output_w(state, bus_w).copy()
    for a in d.actions:
        out[state.index.psu_ids.index(a.target_id)] = a.value
    return out


def check(policy: CurveLoadSharingPolicy, state: PowerState, fc: SiteForecast) -> None:
    ix = state.index
    d = policy.decide(state, fc)
    bus_w, usable, _, risk = bus_inputs(state, fc)
    out = final_outputs(d, state, bus_w)
    slack = policy.min_change_w + 1e-6
    n = np.bincount(ix.psu_bus, minlength=ix.n_bus)
    usable_cap = np.bincount(ix.psu_bus, weights=np.where(usable, ix.psu_rating_w, 0.0), minlength=ix.n_bus)
    assert (out >= -1e-9).all()
    ok_bus = (usable_cap >= bus_w)[ix.psu_bus]
    assert (out <= ix.psu_rating_w + slack)[ok_bus].all(), "a PSU above its rating on a bus that fits"
    assert (out[~usable] <= slack).all(), "a dead PSU still carries load"
    carried = np.bincount(ix.psu_bus, weights=out, minlength=ix.n_bus)
    feasible = usable_cap >= bus_w
    assert (np.abs(carried - bus_w)[feasible] <= n[feasible] * slack).all(), "bus load not carried"
    safe = usable & (risk < policy.failure_prob_threshold)
    safe_cap = np.bincount(ix.psu_bus, weights=np.where(safe, ix.psu_rating_w, 0.0), minlength=ix.n_bus)
    risky = usable & ~safe
    can_unload = safe_cap[ix.psu_bus] >= bus_w[ix.psu_bus]
    assert (out[risky & can_unload] <= slack).all(), "load left on a PSU predicted to fail"
    largest = np.zeros(ix.n_bus)
    np.maximum.at(largest, ix.psu_bus, np.where(usable, ix.psu_rating_w, 0.0))
    nplus1 = (usable_cap - largest >= bus_w - 1e-9) | (bus_w <= 0)
    if d.status is not DecisionStatus.INFEASIBLE:
        assert nplus1.all(), "N+1 lost but the decision says ok"
    if not nplus1.all():
        assert d.status is DecisionStatus.INFEASIBLE
        assert any("N+1 lost" in r for r in d.reasons)


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_load_sharing_limits_nplus1_and_risk(seed: int) -> None:
    rng = np.random.default_rng(seed)
    policy = CurveLoadSharingPolicy()
    for _ in range(STATES):
        state = random_state(rng)
        check(policy, state, random_forecast(rng, state))


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_load_sharing_never_loses_more_than_equal_sharing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    policy = CurveLoadSharingPolicy()
    for _ in range(STATES):
        state = random_state(rng)
        state = state.with_(feed_available=None, ups_on_battery=None)  # all on mains, no risk
        d = policy.decide(state, SiteForecast())
        bus_w, usable, _, _ = bus_inputs(state, SiteForecast())
        equal = equal_share_output_w(state, bus_w, usable)
        if d.predicted_effect and (equal <= state.index.psu_rating_w).all():
            assert d.predicted_effect["loss_w"] <= d.predicted_effect["equal_share_loss_w"] + 1e-6


def test_fixture_curves_are_the_real_dataset() -> None:
    need((DATASETS / "psu_efficiency").is_dir(), "shared/datasets/psu_efficiency is missing")
    pfe = np.loadtxt(DATASETS / "psu_efficiency" / "psu_efficiency_curve_pfe.csv", delimiter=",", skiprows=1)
    load, eff = pfe[:, 0] / 600.0, pfe[:, 1] / 100.0
    for lf, e in zip(PFE_LOAD_FRAC, PFE_EFF_FRAC, strict=True):
        assert np.min(np.abs(load - lf)) < 1e-4
        assert abs(np.interp(lf, load, eff) - e) < 1e-4
    rows = (DATASETS / "psu_efficiency" / "80plus_230v_internal_redundant_thresholds.csv").read_text().splitlines()
    titanium = {int(r.split(",")[1]): float(r.split(",")[2]) for r in rows if r.startswith("Titanium")}
    assert [titanium[int(round(x * 100))] / 100.0 for x in TITANIUM_LOAD_FRAC] == TITANIUM_EFF_FRAC.tolist()


def test_two_psu_bus_prefers_one_unit_at_low_load_on_the_measured_curve() -> None:
    # At ~15 % load per unit the measured curve is ~90.5 %; one unit at ~30 % is ~93.5 %.
    from tests.decide.random_sites import real_curves

    from wattwise.decide.index import SiteIndex
    from wattwise.model.generate import SiteSpec, generate_site

    ix = SiteIndex.from_site(generate_site(SiteSpec(servers=2, servers_per_rack=2, seed=0)))
    assert ix.curve_names == ("80plus_platinum",)  # row 0 of real_curves(): the measured PFE curve
    state = PowerState(index=ix, server_power_w=ix.server_idle_w * 1.3, efficiency=real_curves())
    d = CurveLoadSharingPolicy().decide(state, SiteForecast())
    assert d.predicted_effect["loss_w"] < d.predicted_effect["equal_share_loss_w"]
    per_server = {}
    for a in d.actions:
        per_server.setdefault(a.target_id.rsplit("-psu", 1)[0], []).append(a.value)
    assert any(0.0 in v for v in per_server.values()), "no bus moved to a single unit"


def test_parked_twins_alternate_so_the_feed_sides_stay_balanced(monkeypatch: pytest.MonkeyPatch) -> None:
    """2N servers at light load: one PSU per bus carries it, and the carriers alternate feed sides."""
    from wattwise.control.assemble import efficiency_curves
    from wattwise.decide import load_sharing
    from wattwise.decide.index import SiteIndex
    from wattwise.decide.load_sharing import psu_side
    from wattwise.model.generate import SiteSpec, generate_site

    ix = SiteIndex.from_site(generate_site(SiteSpec(servers=400, seed=5)))
    util = np.random.default_rng(5).uniform(0.2, 0.6, len(ix.server_ids))
    state = PowerState(
        index=ix,
        server_power_w=ix.server_idle_w + util * (ix.server_peak_w - ix.server_idle_w),
        efficiency=efficiency_curves(ix),
    )
    fc = SiteForecast()
    bus_w, *_ = bus_inputs(state, fc)
    balanced = CurveLoadSharingPolicy().decide(state, fc)
    monkeypatch.setattr(load_sharing, "balance_feeds", lambda *args: None)
    one_sided = CurveLoadSharingPolicy().decide(state, fc)  # balancing off
    side = psu_side(state)
    per_side = {}
    for name, d in (("balanced", balanced), ("one_sided", one_sided)):
        out = final_outputs(d, state, bus_w)
        load = np.bincount(side, weights=out)
        per_side[name] = load[np.unique(side)]
        parked = np.bincount(ix.psu_bus, weights=(out <= 1e-9).astype(float), minlength=ix.n_bus)
        assert parked.sum() > 0.5 * ix.n_bus, "the light-load plan should park one twin per bus"
    assert len(per_side["balanced"]) == 2
    spread = abs(per_side["balanced"][0] - per_side["balanced"][1])
    assert spread <= 2 * bus_w.max() + 1e-6, f"feed sides differ by {spread:.0f} W, more than two buses"
    assert abs(per_side["one_sided"][0] - per_side["one_sided"][1]) > 0.9 * per_side["one_sided"].sum()
    # Balancing is free: the mirrored twins have the same curve, so the loss is unchanged.
    assert balanced.predicted_effect["loss_w"] == pytest.approx(one_sided.predicted_effect["loss_w"], rel=1e-9)


def test_a_balanced_plan_is_kept_when_the_load_drifts() -> None:
    """Re-planning with the plan in force and slightly different loads sends (almost) nothing."""
    from wattwise.control.assemble import efficiency_curves
    from wattwise.decide.index import SiteIndex
    from wattwise.model.generate import SiteSpec, generate_site

    ix = SiteIndex.from_site(generate_site(SiteSpec(servers=400, seed=5)))
    rng = np.random.default_rng(6)
    util = rng.uniform(0.2, 0.6, len(ix.server_ids))
    curves = efficiency_curves(ix)
    power = ix.server_idle_w + util * (ix.server_peak_w - ix.server_idle_w)
    state = PowerState(index=ix, server_power_w=power, efficiency=curves)
    fc = SiteForecast()
    bus_w, *_ = bus_inputs(state, fc)
    first = CurveLoadSharingPolicy().decide(state, fc)
    assert len(first.actions) > 0.5 * len(ix.psu_ids)
    out = final_outputs(first, state, bus_w)
    bus_sum = np.bincount(ix.psu_bus, weights=out, minlength=ix.n_bus)[ix.psu_bus]
    share = np.where(bus_sum > 0, out / np.maximum(bus_sum, 1e-12), 0.5)
    drifted = PowerState(
        index=ix, server_power_w=power * rng.uniform(0.97, 1.03, len(power)), efficiency=curves, psu_share_frac=share
    )
    again = CurveLoadSharingPolicy().decide(drifted, fc)
    assert len(again.actions) <= 0.02 * len(ix.psu_ids), f"{len(again.actions)} set-points after a 3 % drift"


def test_parking_never_overloads_a_pdu_phase() -> None:
    """A phase that cannot take its buses' whole load gets those buses spread back over both twins."""
    from dataclasses import replace

    from wattwise.control.assemble import efficiency_curves
    from wattwise.decide.index import SiteIndex
    from wattwise.model.generate import SiteSpec, generate_site

    ix = SiteIndex.from_site(generate_site(SiteSpec(servers=200, seed=5)))
    power = ix.server_idle_w + 0.4 * (ix.server_peak_w - ix.server_idle_w)
    fc = SiteForecast()
    free = PowerState(index=ix, server_power_w=power, efficiency=efficiency_curves(ix))
    bus_w, *_ = bus_inputs(free, fc)
    out = final_outputs(CurveLoadSharingPolicy().decide(free, fc), free, bus_w)
    row = ix.psu_pdu * 3 + ix.psu_phase
    load = np.bincount(row, weights=out / free.nominal_efficiency_frac, minlength=ix.phase_capacity_w.size)
    busiest = int(np.argmax(load))
    assert (out[row == busiest] == 0).sum() < (row == busiest).sum(), "the busiest phase carries parked load"
    # Cap that phase just above what equal sharing puts on it, below what parking put there.
    equal = np.bincount(row, weights=equal_share_output_w(free, bus_w, np.ones(len(out), bool)), minlength=load.size)
    cap = ix.phase_capacity_w.copy().reshape(-1)
    cap[busiest] = (equal[busiest] / free.nominal_efficiency_frac + load[busiest]) / 2
    assert load[busiest] > cap[busiest]
    tight_ix = replace(ix, phase_capacity_w=cap.reshape(ix.phase_capacity_w.shape))
    tight = PowerState(index=tight_ix, server_power_w=power, efficiency=efficiency_curves(tight_ix))
    d = CurveLoadSharingPolicy().decide(tight, fc)
    out2 = final_outputs(d, tight, bus_w)
    load2 = np.bincount(row, weights=out2 / tight.nominal_efficiency_frac, minlength=load.size)
    assert load2[busiest] <= cap[busiest] + 1e-6
    assert d.predicted_effect["loss_w"] <= d.predicted_effect["equal_share_loss_w"] + 1e-6
