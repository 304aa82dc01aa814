"""Per-step outcome accounting: adds one step of a twin's state to its :class:`Tally` and timeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from wattwise.sim import work
from wattwise.sim.state import any_

if TYPE_CHECKING:
    from wattwise.sim.twin import Twin

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Rates = tuple[FloatArray, float, float, float]


class StepAccounting:
    """Accumulates a twin's outcome step by step (it reads the twin; it never changes its physics).

    Args:
        twin: The twin whose ``tally`` and ``timeline`` this fills.
    """

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self._rates: Rates | None = None
        self._rates_for: object = None
        self._tier_count = np.bincount(twin.work.svc_tier, minlength=4).astype(np.float64)
        self._utility = ~twin.ch.feed_is_generator
        self._has_utility = bool(self._utility.any())
        self._phase_limit_w = np.where(twin.ch.phase_capacity_w > 0, twin.ch.phase_capacity_w, np.inf)

    def service_rates(self, up: BoolArray, own_ok: BoolArray) -> Rates:
        """Per-second service figures: tier up-counts, dependency violations, inversion, critical share.

        They only change when the set of running workloads does, so they are cached with it.
        """
        svc = self.twin._svc
        if self._rates is None or self._rates_for is not svc:
            ws = self.twin.work
            tier_up = np.bincount(ws.svc_tier, weights=up.astype(np.float64), minlength=4)
            crit = ws.svc_tier == 0
            self._rates = (
                np.asarray(tier_up, dtype=np.float64),
                float(np.count_nonzero(own_ok & ~up)),
                float(work.priority_inversion(ws, up)),
                float(up[crit].mean()) if crit.any() else 1.0,
            )
            self._rates_for = svc
        return self._rates

    def account(self, dt: float, up: BoolArray, own_ok: BoolArray) -> None:
        """Add one step of ``dt`` seconds to the tally (and the timeline when it is kept)."""
        tw = self.twin
        t, ch = tw.tally, tw.ch
        tier_up, dep_viol, inversion, _ = self.service_rates(up, own_ok)
        t.tier_up_s += tier_up * dt
        t.tier_total_s += self._tier_count * dt
        if self._has_utility and not any_(ch.feed_available & self._utility):
            t.outage_s += dt
            t.outage_tier_up_s += tier_up * dt
            t.outage_tier_total_s += self._tier_count * dt
        t.dependency_violation_s += dep_viol * dt
        t.priority_inversion_s += inversion * dt
        over = ch.phase_w > self._phase_limit_w
        if any_(over):
            t.phase_overload_s += over.ravel() * dt
        feed_w = ch.node_load_w[: tw.ix.n_feed]
        t.feed_overload_s += dt * float(any_(feed_w > tw.feed_capacity_w))
        t.ups_overload_s += dt * float(np.count_nonzero(ch.ups_output_w > ch.ups_capacity_w))
        t.energy_in_j += float(feed_w.sum()) * dt
        t.energy_it_j += tw.it_power_w * dt
        t.energy_loss_psu_j += tw.loss_psu_w * dt
        t.energy_loss_ups_j += tw.loss_ups_w * dt
        t.battery_discharged_j += float(ch.ups_battery_w.sum()) * dt
        if any_(ch.ups_on_battery):
            full = np.maximum(ch.ups_battery_wh * ch.ups_soh_frac, 1e-9)
            t.battery_min_charge_frac = min(t.battery_min_charge_frac, float((ch.ups_energy_wh / full).min()))
        t.energy_cost += float(feed_w @ ch.price_per_kwh) * dt / 3.6e6
        t.carbon_g += float(feed_w @ ch.carbon_g_per_kwh) * dt / 3.6e6
        self._servers_and_migrations(dt)
        if tw.timeline is not None:
            self.record(up, own_ok)

    def _servers_and_migrations(self, dt: float) -> None:
        tw = self.twin
        t, srv, ws = tw.tally, tw.srv, tw.work
        if not tw._all_up:
            t.server_down_s += float(np.count_nonzero(~srv.powered)) * dt
        if tw.cool.any_thermal:
            t.thermal_throttle_s += float(np.count_nonzero(srv.thermal_throttled & srv.powered)) * dt
        if tw._migrating:
            mig = ws.wl_mig_dest >= 0
            dest = ws.wl_mig_dest[mig]
            span = srv.curve_w[dest, 10] - srv.curve_w[dest, 0]
            t.migration_energy_j += float((ws.wl_demand_frac[mig] * span).sum()) * dt
            t.migration_s += float(np.count_nonzero(mig)) * dt

    def record(self, up: BoolArray, own_ok: BoolArray) -> None:
        """Append this step to the timeline."""
        tw = self.twin
        tl, ch = tw.timeline, tw.ch
        assert tl is not None
        tl.t_s.append(tw.t_s)
        tl.feed_load_w.append(ch.node_load_w[: tw.ix.n_feed].copy())
        tl.ups_load_w.append(ch.ups_output_w.copy())
        full = np.maximum(ch.ups_battery_wh * ch.ups_soh_frac, 1e-9)
        tl.battery_charge_frac.append(ch.ups_energy_wh / full)
        inlet = tw.cool.rack_inlet_c
        tl.inlet_max_c.append(float(inlet.max()) if len(inlet) else 0.0)
        tl.inlet_mean_c.append(float(inlet.mean()) if len(inlet) else 0.0)
        tl.it_power_w.append(tw.it_power_w)
        tl.critical_up_frac.append(self.service_rates(up, own_ok)[3])
