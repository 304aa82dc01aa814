"""Determinism and conservation: properties that hold for any site, seed and event sequence."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.site import Site
from wattwise.model.values import Action, ActionKind
from wattwise.sim.runner import run_scenario
from wattwise.sim.scenario import parse_scenario
from wattwise.sim.twin import Twin

SCENARIO = {
    "name": "det",
    "generate": {"servers": 80, "servers_per_rack": 10, "racks_per_hall": 4, "seed": 6},
    "duration_s": 400,
    "events": [
        {"at_s": 50, "kind": "feed_loss", "target": "utility-a", "duration_s": 100},
        {"at_s": 60, "kind": "generator_fail", "target": "generator-a"},
        {"at_s": 80, "kind": "workload_surge", "target": "*", "factor": 1.5, "duration_s": 200},
        {"at_s": 100, "kind": "processor_unstable", "target": "ep-0000", "mode": "jitter", "severity": 0.8},
    ],
}


def test_same_scenario_and_seed_give_identical_outcome_and_timeline() -> None:
    a = run_scenario(parse_scenario({**SCENARIO, "seed": 11}))
    b = run_scenario(parse_scenario({**SCENARIO, "seed": 11}))
    assert a.outcome == b.outcome
    assert a.events == b.events
    for key, series in a.timeline.items():
        assert np.array_equal(series, b.timeline[key]), key


def test_different_seeds_give_different_traces() -> None:
    a = run_scenario(parse_scenario({**SCENARIO, "seed": 1}))
    b = run_scenario(parse_scenario({**SCENARIO, "seed": 2}))
    assert not np.array_equal(a.timeline["it_power_w"], b.timeline["it_power_w"])
    assert a.outcome.energy_it_j != b.outcome.energy_it_j


@lru_cache(maxsize=4)
def _site(seed: int) -> Site:
    return generate_site(
        SiteSpec(servers=50, servers_per_rack=10, racks_per_hall=3, racklet_racks_per_hall=1, seed=seed)
    )


def _perturb(twin: Twin, what: int, k: int) -> None:
    """Apply one random disturbance: feed loss, outlet off, PSU failure, surge, breaker trip, ATS request."""
    s = twin.site
    if what == 0:
        twin.ch.feed_available[k % len(s.feeds)] ^= True
    elif what == 1:
        twin.apply(Action(kind=ActionKind.OUTLET_OFF, target_id=twin.ids["outlet"][k % len(twin.ids["outlet"])]))
    elif what == 2:
        twin.psu.failed[k % len(twin.psu.failed)] = True
    elif what == 3:
        twin.work.wl_surge[:] = 1.0 + (k % 5)
    elif what == 4:
        twin.ch.phase_tripped[k % len(s.pdus), k % 3] = True
    elif what == 5:
        twin.ch.ups_energy_wh[k % len(s.ups)] = 0.5
    else:
        twin.apply(Action(kind=ActionKind.PSU_SETPOINT, target_id=twin.ids["psu"][k % len(twin.ids["psu"])], value=0.0))
    if what == 3:
        twin.mark_dirty()  # demand scaling is cached; topology changes (feeds, PSUs, breakers) are detected


def _latched_dead(twin: Twin) -> np.ndarray:
    """PSUs that are dead by a latch the test never clears (failure, OCP, outlet off, tripped phase)."""
    slot = twin.graph.outlet_pdu * 3 + twin.graph.outlet_phase
    outlet_dead = twin.ch.phase_tripped.ravel()[slot] | ~twin.ch.outlet_on
    return np.asarray(twin.psu.failed | twin.psu.ocp_tripped | outlet_dead[twin.psu.outlet])


def _check_step(twin: Twin) -> None:
    ch, psu, ix = twin.ch, twin.psu, twin.ix
    feeds_w = ch.node_load_w[: ix.n_feed].sum()
    battery_w = ch.ups_battery_w.sum()
    stored_w = 0.9 * ch.ups_charge_w.sum()
    # Power in = IT power + conversion losses (+ what goes into batteries), every step.
    assert feeds_w + battery_w == pytest.approx(
        twin.it_power_w + twin.loss_psu_w + twin.loss_ups_w + stored_w, rel=1e-9
    )
    assert twin.loss_psu_w >= -1e-9
    assert twin.loss_ups_w >= -1e-6
    # DC side: every bus's PSUs deliver exactly what its servers draw.
    bus_w = np.bincount(psu.bus, weights=psu.output_w, minlength=twin.n_bus)
    srv = twin.srv
    ok = srv.bus >= 0
    need = np.bincount(srv.bus[ok], weights=srv.power_w[ok], minlength=twin.n_bus)
    assert np.allclose(bus_w, need)
    # No breaker or node carries more than its path supplies: dead paths carry nothing, and
    # every node's load is exactly what its children draw.
    assert np.all(psu.output_w[~psu.alive] == 0)
    assert np.all(ch.phase_w[~ch.phase_ok] == 0)
    assert np.all(ch.outlet_w[~ch.outlet_ok] <= 1e-9)
    pdu_w = ch.node_load_w[ix.pdu0 :]
    assert np.allclose(ch.phase_w.sum(axis=1), pdu_w)
    ups_children = np.bincount(ix.parent[ix.pdu0 :], weights=pdu_w, minlength=len(ch.node_load_w))
    assert np.allclose(ups_children[ix.ups0 : ix.pdu0], ch.ups_output_w)
    assert np.all(ch.node_load_w[~ch.node_ok] <= 1e-9)
    assert np.all(ch.ups_energy_wh >= 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    site_seed=st.integers(0, 3),
    seed=st.integers(0, 1000),
    disturbances=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 6), st.integers(0, 500)), max_size=6),
    dt_s=st.sampled_from([0.5, 1.0, 5.0]),
)
def test_power_is_conserved_and_no_breaker_exceeds_its_supply(
    site_seed: int, seed: int, disturbances: list[tuple[int, int, int]], dt_s: float
) -> None:
    twin = Twin(_site(site_seed), seed=seed, record_timeline=False)
    plan: dict[int, list[tuple[int, int]]] = {}
    for step, what, k in disturbances:
        plan.setdefault(step, []).append((what, k))
    for step in range(32):
        for what, k in plan.get(step, []):
            _perturb(twin, what, k)
        dead = _latched_dead(twin)
        twin.step(dt_s)
        _check_step(twin)
        # Whatever was dead before the step carries nothing in it (cached topology is never stale).
        assert np.all(twin.psu.output_w[dead] == 0)
        assert np.all(twin.psu.input_w[dead] == 0)
