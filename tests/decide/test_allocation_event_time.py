"""Runtime targets count from the start of the power event (``decide/allocation_problem``).

In the twin, both utilities are lost and both generators fail; the allocation re-plans every
5 s for the outage's first six minutes. Counted from the moment of each plan (what the
allocation did before), the targets ask for the full time again while the battery drains, and
the re-plans keep shedding (9 times here). Counted from the start of the event, with the
response reserve, a re-plan sheds only when what runs beyond its target (the low tiers kept on
the battery's spare, charged ``min_hold_s`` at each plan) has used that spare up, or when the
twin's battery (Peukert, load-dependent inverter efficiency) drains faster than the linear
model says: 3 times here.
"""

from __future__ import annotations

import numpy as np
from tests.decide.twin_adapter import twin_power_state

from wattwise.decide.allocation import GreedyAllocationPolicy
from wattwise.decide.base import PowerState, SiteForecast
from wattwise.decide.chain import BatteryTimer
from wattwise.decide.index import SiteIndex
from wattwise.model.values import ActionKind
from wattwise.sim.runner import build_twin, run_scenario
from wattwise.sim.scenario import Scenario, parse_scenario
from wattwise.sim.twin import Twin

UPS_IDS = ("ups-h1-a", "ups-h1-b", "ups-h2-a", "ups-h2-b", "ups-h3-a", "ups-h3-b")


def outage() -> Scenario:
    return parse_scenario(
        {
            "name": "outage-replans",
            "generate": {"servers": 400, "servers_per_rack": 20, "racks_per_hall": 10, "seed": 5},
            "seed": 5,
            "duration_s": 360,
            "overrides": {u: {"battery_wh": 3000.0} for u in UPS_IDS},
            "events": [
                {"at_s": 10, "kind": "generator_fail", "target": "generator-a"},
                {"at_s": 10, "kind": "generator_fail", "target": "generator-b"},
                {"at_s": 20, "kind": "feed_loss", "target": "utility-a", "duration_s": 1200},
                {"at_s": 20, "kind": "feed_loss", "target": "utility-b", "duration_s": 1200},
            ],
        }
    )


def shed_times(policy: GreedyAllocationPolicy, timed: bool) -> tuple[list[float], PowerState]:
    """Times of the decisions that shed, and the last state."""
    timer = BatteryTimer()
    times: list[float] = []
    last: list[PowerState] = []

    def hook(tw: Twin, t_s: float) -> None:
        ix = SiteIndex.from_site(tw.site)
        state = twin_power_state(ix, tw)
        state = timer.stamp(state) if timed else state
        last[:] = [state]
        d = policy.decide(state, SiteForecast())
        sheds = [a for a in d.actions if a.kind is ActionKind.SERVICE_SHED]
        if sheds:
            times.append(t_s)
        for a in d.actions:
            tw.apply(a)

    sc = outage()
    run_scenario(sc, hook, hook_every_s=5.0, twin=build_twin(sc))
    return times, last[0]


def test_event_time_targets_shed_far_less_often_than_plan_time_targets() -> None:
    timed, state = shed_times(GreedyAllocationPolicy(), timed=True)
    assert state.ups_on_battery_s is not None and bool((state.ups_on_battery_s > 300.0).all())
    assert len(timed) >= 1 and timed[0] <= 25.0  # the outage's plan, at the first decision after it
    assert 25.0 not in timed  # the re-plan right after the outage's plan sheds nothing more

    untimed, _ = shed_times(GreedyAllocationPolicy(response_reserve_s=0.0), timed=False)
    assert untimed[0] == timed[0]
    assert len(timed) - 1 <= (len(untimed) - 1) // 2, (timed, untimed)


def test_battery_timer_counts_per_ups_and_restarts() -> None:
    sc = outage()
    twin = build_twin(sc)
    ix = SiteIndex.from_site(twin.site)
    timer = BatteryTimer()
    assert not timer.stamp(twin_power_state(ix, twin)).ups_on_battery_s.any()  # type: ignore[union-attr]
    twin.ch.feed_available[:] = False
    twin.ch.gen_failed[:] = True
    twin.run_for(1.0)
    start = twin.t_s
    first = timer.stamp(twin_power_state(ix, twin))
    twin.run_for(30.0)
    later = timer.stamp(twin_power_state(ix, twin))
    assert np.allclose(first.ups_on_battery_s, 0.0)  # type: ignore[arg-type]
    assert np.allclose(later.ups_on_battery_s, twin.t_s - start)  # type: ignore[arg-type]
    twin.ch.feed_available[:] = True
    twin.run_for(5.0)
    back = timer.stamp(twin_power_state(ix, twin))
    assert not back.ups_on_battery_s.any()  # type: ignore[union-attr]
