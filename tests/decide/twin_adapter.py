"""Fill decide's frozen state from the twin's arrays (what the sim-backed controller does).

The twin keeps the site in :class:`~wattwise.model.graph.SiteGraph` order, the same order as
:class:`~wattwise.decide.index.SiteIndex`, so no id lookup is needed: arrays are copied.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from wattwise.decide.base import EfficiencyCurves, PowerState, SiteForecast
from wattwise.decide.index import SiteIndex
from wattwise.sim.twin import Twin


def server_ac_w(ix: SiteIndex, twin: Twin, dc_w: np.ndarray | None = None) -> np.ndarray:
    """Servers' AC input power: the twin's DC power scaled by its bus's PSU input/output ratio."""
    dc = twin.srv.power_w if dc_w is None else dc_w
    ok = ix.server_bus >= 0
    bus_in = np.bincount(ix.psu_bus, weights=twin.psu.input_w, minlength=ix.n_bus)
    bus_dc = np.bincount(ix.server_bus[ok], weights=twin.srv.power_w[ok], minlength=ix.n_bus)
    ratio = np.where(bus_dc > 0, bus_in / np.maximum(bus_dc, 1e-9), 1.0 / 0.94)
    return np.where(ok, dc * ratio[np.maximum(ix.server_bus, 0)], dc)


def twin_power_state(ix: SiteIndex, twin: Twin, efficiency: EfficiencyCurves | None = None) -> PowerState:
    """A :class:`PowerState` of the twin now."""
    live = np.where(twin.work.wl_mig_dest >= 0, twin.work.wl_mig_dest, twin.work.wl_server)
    if not np.array_equal(live, ix.wl_server):  # placement as it is now (migrations in flight at their target)
        ix = replace(ix, wl_server=live.astype(np.int64))
    ch, psu, work, cool = twin.ch, twin.psu, twin.work, twin.cool
    bus_w = np.bincount(ix.psu_bus, weights=psu.output_w, minlength=ix.n_bus)
    share = np.where(bus_w[ix.psu_bus] > 0, psu.output_w / np.maximum(bus_w[ix.psu_bus], 1e-9), 0.0)
    full_wh = np.maximum(ch.ups_battery_wh * ch.ups_soh_frac, 1e-9)
    return PowerState(
        index=ix,
        t_s=twin.t_s,
        server_power_w=server_ac_w(ix, twin),
        feed_available=ch.feed_available,
        ats_source=ch.ats_active,
        ups_charge_frac=np.clip(ch.ups_energy_wh / full_wh, 0.0, 1.0),
        ups_on_battery=ch.ups_on_battery,
        service_level_frac=np.where(work.svc_shed, 0.0, work.svc_throttle_frac),
        service_running=work.svc_up.copy(),
        psu_available=~psu.failed & ~psu.ocp_tripped,  # healthy units; a switched-off outlet is no fault
        psu_share_frac=share if bus_w.sum() > 0 else None,
        efficiency=efficiency,
        racklet_leak=cool.rl_leak,
        racklet_isolated=cool.rl_isolated,
        rack_inlet_c=cool.rack_inlet_c,
    )


def degradation_forecast(twin: Twin, horizon_s: float = 900.0) -> SiteForecast:
    """A stand-in failure forecast: a PSU degrading at its present rate that would reach
    failure (degradation 1.0) within the horizon gets probability 1, scaled down linearly with
    the time it has left beyond the horizon (any predictor's output fits the same field)."""
    psu = twin.psu
    left_s = np.where(
        psu.degrade_rate_per_s > 0, (1.0 - psu.degradation_frac) / np.maximum(psu.degrade_rate_per_s, 1e-12), np.inf
    )
    prob = np.clip(horizon_s / np.maximum(left_s, 1e-9), 0.0, 1.0)
    return SiteForecast(horizon_s=horizon_s, psu_failure_prob=prob)
