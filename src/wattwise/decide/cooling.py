"""Cooling allocation (seed 003): set-points follow heat; leaks isolated; failures shifted or capped.

Per racklet, heat is the IT power of its racks' servers (planned: the forecast's upper bound
where given). The policy:

1. **Leak** (sensor wet, loop not isolated): ``COOLING_ISOLATE`` at once; the loop then cools
   nothing, so its load has to go (step 3).
2. **Set-points follow heat**: a racklet at or under ``low_frac`` of its capacity runs at
   ``max_setpoint_c`` (warmer inlet, less fan/pump energy), at or over ``high_frac`` at
   ``min_setpoint_c``, linearly in between; changes under ``min_change_c`` are not sent.
3. **Heat above capacity** (pump/fan failure, isolated loop, predicted cooling failure): the
   inlet is modelled as first order, settling at ``set-point + rise_c × excess / rated`` with
   time constant ``tau_s``. If the trip limit is reached later than ``migration_lead_s``,
   workloads move away (:class:`~wattwise.decide.migration.PredictiveMigrationPolicy`);
   otherwise the racklet's servers are capped at once so heat fits the capacity left.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from wattwise.decide.base import PowerState, SiteForecast
from wattwise.decide.migration import PredictiveMigrationPolicy
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def racklet_heat_w(state: PowerState, forecast: SiteForecast) -> tuple[FloatArray, IntArray, FloatArray]:
    """Heat per racklet (W), racklet of each server (-1: none) and planned server power (W)."""
    ix = state.index
    power = state.server_power_w
    if forecast.server_power_upper_w is not None:
        power = np.maximum(power, forecast.server_power_upper_w)
    rl = np.where(ix.server_rack >= 0, ix.rack_racklet[np.maximum(ix.server_rack, 0)], -1)
    ok = rl >= 0
    heat = np.bincount(rl[ok], weights=power[ok], minlength=len(ix.racklet_ids)).astype(np.float64)
    return heat, rl, power


def time_to_trip_s(
    inlet_c: FloatArray,
    setpoint_c: FloatArray,
    trip_c: FloatArray,
    excess_frac: FloatArray,
    rise_c: float,
    tau_s: float,
) -> FloatArray:
    """Time until a first-order inlet reaches its trip limit (inf when it settles below), s.

    >>> time_to_trip_s(np.array([24.0]), np.array([24.0]), np.array([40.0]), np.array([1.0]), 30.0, 60.0).round(1)
    array([45.7])
    """
    target = setpoint_c + rise_c * excess_frac
    with np.errstate(divide="ignore", invalid="ignore"):
        t = tau_s * np.log((target - inlet_c) / (target - trip_c))
    out: FloatArray = np.where(inlet_c >= trip_c, 0.0, np.where(target > trip_c, t, np.inf))
    return out


class HeatFollowingCoolingPolicy:
    """Cooling set-points that follow heat; leak isolation; shift or cap before a thermal trip.

    Args:
        min_setpoint_c: Inlet set-point at high load, °C.
        max_setpoint_c: Inlet set-point at low load, °C.
        low_frac: Utilisation at or under which the set-point is ``max_setpoint_c``.
        high_frac: Utilisation at or over which the set-point is ``min_setpoint_c``.
        min_change_c: Smallest set-point change worth sending, °C.
        rise_c: Inlet rise per unit of heat excess over rated capacity, °C.
        tau_s: Thermal time constant, s.
        migration_lead_s: Time migrations need to relieve a racklet, s.
        max_migrations: Migration budget per call.

    >>> import numpy as np
    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> from wattwise.decide.index import SiteIndex
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=120, servers_per_rack=20, racks_per_hall=6, seed=1)))
    >>> leak = PowerState(index=ix, server_power_w=ix.server_idle_w, racklet_leak=[True, False])
    >>> d = HeatFollowingCoolingPolicy().decide(leak, SiteForecast())
    >>> sorted({a.kind.value for a in d.actions})
    ['cooling_isolate', 'cooling_setpoint', 'workload_migrate']
    """

    name = "heat_following_cooling"

    def __init__(
        self,
        min_setpoint_c: float = 18.0,
        max_setpoint_c: float = 27.0,
        low_frac: float = 0.3,
        high_frac: float = 0.8,
        min_change_c: float = 0.5,
        rise_c: float = 30.0,
        tau_s: float = 120.0,
        migration_lead_s: float = 120.0,
        max_migrations: int = 40,
    ) -> None:
        self.min_setpoint_c = min_setpoint_c
        self.max_setpoint_c = max_setpoint_c
        self.low_frac = low_frac
        self.high_frac = high_frac
        self.min_change_c = min_change_c
        self.rise_c = rise_c
        self.tau_s = tau_s
        self.migration_lead_s = migration_lead_s
        self.max_migrations = max_migrations

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        """Isolate leaks, set set-points, and shift or cap heat that exceeds cooling."""
        ix = state.index
        if not ix.racklet_ids:
            return Decision(
                policy_name=self.name, status=DecisionStatus.SKIPPED, reasons=("no racklets",), t_s=state.t_s
            )
        assert state.racklet_leak is not None
        assert state.racklet_isolated is not None
        assert state.racklet_cooling_available_w is not None
        leak = state.racklet_leak & ~state.racklet_isolated
        actions = [
            Action(kind=ActionKind.COOLING_ISOLATE, target_id=ix.racklet_ids[r], value=1.0, reason="leak detected")
            for r in np.flatnonzero(leak).tolist()
        ]
        isolated = state.racklet_isolated | leak
        cap = np.where(isolated, 0.0, np.minimum(state.racklet_cooling_available_w, ix.racklet_cooling_capacity_w))
        if forecast.racklet_cooling_failure_prob is not None:
            cap = np.where(forecast.racklet_cooling_failure_prob >= 0.5, 0.0, cap)
        heat, rl, power = racklet_heat_w(state, forecast)
        actions += self._setpoints(state, heat, cap)
        reasons: list[str] = []
        over = np.flatnonzero(heat > cap + 1e-6)
        if len(over):
            more, why, ok = self._relieve(state, forecast, over, heat, cap, isolated, rl, power)
            actions += more
            reasons += why
        else:
            ok = True
        status = DecisionStatus.OK if ok else DecisionStatus.INFEASIBLE
        if ok and not actions:
            status = DecisionStatus.SKIPPED
        util = heat / np.maximum(ix.racklet_cooling_capacity_w, 1.0)
        return Decision(
            policy_name=self.name,
            status=status,
            actions=tuple(actions),
            reasons=(f"{len(over)} racklets with heat above cooling", *reasons[:20]),
            predicted_effect={"max_cooling_util_frac": float(util.max(initial=0.0))},
            t_s=state.t_s,
        )

    def _setpoints(self, state: PowerState, heat: FloatArray, cap: FloatArray) -> list[Action]:
        ix = state.index
        assert state.racklet_setpoint_c is not None
        util = np.where(cap > 0, heat / np.maximum(cap, 1e-9), 1.0)
        x = np.clip((util - self.low_frac) / max(self.high_frac - self.low_frac, 1e-9), 0.0, 1.0)
        want = np.round(self.max_setpoint_c - x * (self.max_setpoint_c - self.min_setpoint_c), 1)
        change = np.flatnonzero(np.abs(want - state.racklet_setpoint_c) >= self.min_change_c)
        return [
            Action(
                kind=ActionKind.COOLING_SETPOINT,
                target_id=ix.racklet_ids[r],
                value=float(want[r]),
                previous_value=float(state.racklet_setpoint_c[r]),
                reason=f"heat {heat[r]:.0f} W is {util[r]:.0%} of cooling",
                not_before_s=state.t_s,
            )
            for r in change.tolist()
        ]

    def _relieve(
        self,
        state: PowerState,
        forecast: SiteForecast,
        over: IntArray,
        heat: FloatArray,
        cap: FloatArray,
        isolated: npt.NDArray[np.bool_],
        rl: IntArray,
        power: FloatArray,
    ) -> tuple[list[Action], list[str], bool]:
        """Migrate where there is time, cap where there is not."""
        ix = state.index
        assert state.racklet_setpoint_c is not None
        assert state.rack_inlet_c is not None
        inlet = np.full(len(ix.racklet_ids), np.nan)
        ok_rack = ix.rack_racklet >= 0
        np.fmax.at(inlet, ix.rack_racklet[ok_rack], state.rack_inlet_c[ok_rack])
        inlet = np.where(np.isnan(inlet), state.racklet_setpoint_c, inlet)
        excess = (heat - cap) / np.maximum(ix.racklet_cooling_capacity_w, 1.0)
        ttt = time_to_trip_s(inlet, state.racklet_setpoint_c, ix.racklet_trip_inlet_c, excess, self.rise_c, self.tau_s)
        late = over[ttt[over] < self.migration_lead_s]
        actions: list[Action] = []
        for r in late.tolist():
            actions += _cap_racklet(state, r, heat[r] - cap[r], rl, power, ttt[r])
        mig_state = state.with_(racklet_cooling_available_w=cap, racklet_isolated=isolated)
        d = PredictiveMigrationPolicy(margin_frac=0.0, max_migrations=self.max_migrations).decide(mig_state, forecast)
        capped = {a.target_id for a in actions}
        actions += [a for a in d.actions if a.kind is ActionKind.WORKLOAD_MIGRATE or a.target_id not in capped]
        reasons = [f"{ix.racklet_ids[r]}: trip in {ttt[r]:.0f} s, capped now" for r in late.tolist()]
        return actions, reasons + list(d.reasons), d.status is not DecisionStatus.INFEASIBLE


def _cap_racklet(
    state: PowerState, r: int, excess_w: float, rl: IntArray, power: FloatArray, ttt_s: float
) -> list[Action]:
    """Cap a racklet's servers, largest dynamic power first, until ``excess_w`` is cut."""
    ix = state.index
    servers = np.flatnonzero(rl == r)
    dyn = np.maximum(power[servers] - ix.server_idle_w[servers], 0.0)
    out: list[Action] = []
    for i in np.argsort(-dyn).tolist():
        if excess_w <= 0:
            break
        cut = min(float(dyn[i]), excess_w)
        s = int(servers[i])
        out.append(
            Action(
                kind=ActionKind.POWER_CAP,
                target_id=ix.server_ids[s],
                value=round(float(power[s] - cut), 1),
                previous_value=round(float(ix.server_peak_w[s]), 1),
                reason=f"cooling short on {ix.racklet_ids[r]}: trip in {ttt_s:.0f} s, no time to migrate",
                not_before_s=state.t_s,
            )
        )
        excess_w -= cut
    return out
