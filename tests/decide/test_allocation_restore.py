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
