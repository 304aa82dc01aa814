"""Event-processor hosts stay powered through a power event (their partitions would stop)."""

from __future__ import annotations

import numpy as np

from wattwise.decide.allocation import GreedyAllocationPolicy
from wattwise.decide.base import PowerState, SiteForecast
from wattwise.decide.index import SiteIndex
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.values import ActionKind


def test_servers_hosting_event_processors_are_never_switched_off() -> None:
    site = generate_site(SiteSpec(servers=40, servers_per_rack=10, services=8, seed=3))
    assert site.event_processors, "the generated site needs event processors"
    ix = SiteIndex.from_site(site)
    hosts = {e.server for e in site.event_processors}
    for i, s in enumerate(site.servers):
        assert ix.server_switchable[i] == (bool(s.psus) and s.id not in hosts)
    # Deep outage: every UPS on battery with little charge left; everything but critical goes.
    n_ups = len(ix.ups_node)
    state = PowerState(
        index=ix,
        server_power_w=ix.server_peak_w * 0.8,
        feed_available=[False] * len(site.feeds),
        ups_charge_frac=np.full(n_ups, 0.15),
    )
    d = GreedyAllocationPolicy().decide(state, SiteForecast())
    off = {a.target_id for a in d.actions if a.kind is ActionKind.OUTLET_OFF}
    assert off, "the outage should power some server off"
    host_outlets = {p.input for s in site.servers if s.id in hosts for p in s.psus}
    assert not off & host_outlets


def test_a_host_left_with_nothing_to_run_is_switched_off_again_while_it_still_draws_power() -> None:
    """An outlet-off held by the actuator (services not yet confirmed shed) is planned again."""
    site = generate_site(SiteSpec(servers=40, servers_per_rack=10, services=8, seed=3))
    ix = SiteIndex.from_site(site)
    outage = PowerState(
        index=ix,
        server_power_w=ix.server_peak_w * 0.8,
        feed_available=[False] * len(site.feeds),
        ups_charge_frac=np.full(len(ix.ups_node), 0.15),
    )
    first = GreedyAllocationPolicy().decide(outage, SiteForecast())
    shed = {a.target_id for a in first.actions if a.kind is ActionKind.SERVICE_SHED}
    off = {a.target_id for a in first.actions if a.kind is ActionKind.OUTLET_OFF}
    assert shed and off
    # Next decision: the sheds went out, the outlet-offs were held, the hosts still draw idle power.
    level = np.array([0.0 if s in shed else 1.0 for s in ix.service_ids])
    held = [any(p.input in off for p in s.psus) for s in site.servers]
    idle = np.where(held, ix.server_idle_w, outage.server_power_w)
    later = outage.with_(service_level_frac=level, server_power_w=idle, t_s=outage.t_s + 5.0)
    again = {a.target_id for a in GreedyAllocationPolicy().decide(later, SiteForecast()).actions
             if a.kind is ActionKind.OUTLET_OFF}  # fmt: skip
    assert off <= again
    # A host drawing well above idle runs something the plan does not know of (a workload
    # migrating in): it is not switched off on the plan's word.
    busy = later.with_(server_power_w=np.where(held, ix.server_peak_w, outage.server_power_w))
    d = GreedyAllocationPolicy().decide(busy, SiteForecast())
    assert not off & {a.target_id for a in d.actions if a.kind is ActionKind.OUTLET_OFF}
    # Once those hosts draw nothing, nothing more is sent for them.
    dark = np.array(
        [
            0.0 if any(p.input in off for p in s.psus) else w
            for s, w in zip(site.servers, later.server_power_w, strict=True)
        ]
    )
    d = GreedyAllocationPolicy().decide(later.with_(server_power_w=dark), SiteForecast())
    quiet = {a.target_id for a in d.actions if a.kind is ActionKind.OUTLET_OFF}
    assert not off & quiet
