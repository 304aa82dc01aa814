"""Closed-loop restores: a service comes back only once its dependencies run again."""

from __future__ import annotations

import numpy as np

from wattwise.decide.allocation import GreedyAllocationPolicy
from wattwise.decide.base import PowerState, SiteForecast
from wattwise.decide.index import SiteIndex
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.values import ActionKind


def _restored(state: PowerState) -> set[str]:
    d = GreedyAllocationPolicy().decide(state, SiteForecast())
    return {a.target_id for a in d.actions if a.kind is ActionKind.SERVICE_RESTORE}


def test_dependants_wait_until_their_dependencies_report_running() -> None:
    ix = SiteIndex.from_site(generate_site(SiteSpec(servers=40, servers_per_rack=10, services=8, seed=3)))
    assert len(ix.dep_src), "the site needs dependencies"
    n = len(ix.service_ids)
    all_shed = PowerState(index=ix, server_power_w=ix.server_idle_w, service_level_frac=np.zeros(n))
    # Without running information every shed service is planned back in one decision (staggered).
    everything = _restored(all_shed)
    assert everything == set(ix.service_ids)
    # Nothing runs yet: only the most important tier's services without dependencies come back.
    none_running = all_shed.with_(service_running=np.zeros(n, dtype=bool))
    has_deps = set(ix.dep_src.tolist())
    first = _restored(none_running)
    assert first
    top = int(ix.service_eff_rank.min())
    for s in first:
        k = ix.service_ids.index(s)
        assert k not in has_deps and ix.service_eff_rank[k] == top
    # They run again: their dependants may follow; nothing whose dependency is not running.
    level = np.array([1.0 if sid in first else 0.0 for sid in ix.service_ids])
    first_up = all_shed.with_(service_level_frac=level, service_running=level > 0)
    nxt = _restored(first_up)
    assert nxt, "nothing follows the first step"
    assert not nxt & first
    for s in nxt:
        k = ix.service_ids.index(s)
        assert all(ix.service_ids[int(d)] in first for d in ix.dep_dst[ix.dep_src == k])
    # Restored but still restarting (level 1, not running): everything else waits.
    restarting = first_up.with_(service_running=np.zeros(n, dtype=bool))
    assert _restored(restarting) == set()


def test_an_outlet_left_off_under_a_running_server_comes_back_once_power_is_back() -> None:
    ix = SiteIndex.from_site(generate_site(SiteSpec(servers=40, servers_per_rack=10, services=8, seed=3)))
    hosted = np.bincount(ix.wl_server, minlength=len(ix.server_ids)) > 0
    j = int(np.flatnonzero(hosted & ix.server_switchable & (ix.server_bus >= 0))[0])
    psus = np.flatnonzero(ix.psu_bus == ix.server_bus[j])
    assert len(psus) == 2, "the server needs two PSUs of its own"
    outlet_on = np.ones(len(ix.psu_ids), dtype=bool)
    outlet_on[psus[0]] = False  # one outlet off, the server runs on its other PSU
    running = PowerState(index=ix, server_power_w=ix.server_idle_w * 1.5, psu_outlet_on=outlet_on)

    def outlets_on(state: PowerState) -> list[str]:
        d = GreedyAllocationPolicy().decide(state, SiteForecast())
        return [a.target_id for a in d.actions if a.kind is ActionKind.OUTLET_ON]

    assert outlets_on(running) == [ix.psu_outlet_ids[int(psus[0])]]
    assert outlets_on(running.with_(psu_outlet_on=np.ones(len(ix.psu_ids), dtype=bool))) == []
    # Not while the power event lasts: a feed down or a UPS on battery.
    no_feed = running.with_(feed_available=np.array([False] + [True] * (len(running.feed_available) - 1)))
    assert ix.psu_outlet_ids[int(psus[0])] not in outlets_on(no_feed)
    on_battery = running.with_(ups_on_battery=np.ones(len(ix.ups_node), dtype=bool))
    assert ix.psu_outlet_ids[int(psus[0])] not in outlets_on(on_battery)
    # A host switched off at both outlets (drawing nothing) with nothing to restore stays off:
    # bringing it back is the restore's business, once a service needs it.
    both_off = outlet_on.copy()
    both_off[psus] = False
    power_w = np.where(np.arange(len(ix.server_ids)) == j, 0.0, 1.5 * ix.server_idle_w)
    dark = running.with_(psu_outlet_on=both_off, server_power_w=power_w)
    assert not set(outlets_on(dark)) & {ix.psu_outlet_ids[int(k)] for k in psus}


def test_from_readings_takes_the_outlet_state_of_each_psu() -> None:
    ix = SiteIndex.from_site(generate_site(SiteSpec(servers=20, servers_per_rack=10, seed=1)))
    latest = {(ix.psu_outlet_ids[0], "outlet_on"): 0.0, (ix.psu_outlet_ids[1], "outlet_on"): 1.0}
    s = PowerState.from_readings(ix, latest)
    assert s.psu_outlet_on is not None
    assert not s.psu_outlet_on[0]
    assert s.psu_outlet_on[1:].all()  # on when read on, and when not read at all
