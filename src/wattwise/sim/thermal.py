"""Heat and cooling: rack inlet temperature as a first-order response to cooling capacity.

Heat equals IT power. A rack in a racklet gets the racklet's cooling capacity in proportion
to its heat; other racks have their own ``cooling_capacity_w`` (room cooling). Capacity scales
with the live share of pumps (liquid) or fans (air) and with fan/pump speed (rated at 0.8 of
full speed); an isolated liquid loop (leak response) cools nothing. The inlet settles towards
``setpoint + thermal_rise_c × max(0, heat − capacity) / rated capacity`` with time constant
``thermal_tau_s``. Servers throttle above their ``max_inlet_c`` and trip at the racklet's
``trip_inlet_c`` (or ``max_inlet_c`` + margin); throttling releases 1 °C under the limit; a
tripped server restarts once its inlet is
5 °C under its limit. A leak not isolated within ``leak_grace_s`` forces the racklet's
servers off (electrical safety).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wattwise.sim.params import TwinParams
from wattwise.sim.state import CoolingState, ServerState, any_, wsum

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
RATED_SPEED_FRAC = 0.8


def racklet_capacity_w(c: CoolingState) -> FloatArray:
    """Cooling capacity available now from each racklet module, W."""
    pumps_ok = np.where(c.rl_pumps > 0, (c.rl_pumps - c.rl_pumps_failed) / np.maximum(c.rl_pumps, 1), 1.0)
    fans_ok = np.where(c.rl_fans > 0, (c.rl_fans - c.rl_fans_failed) / np.maximum(c.rl_fans, 1), 1.0)
    movers = np.where(c.rl_liquid, pumps_ok, fans_ok)
    speed = np.clip(c.rl_speed_frac / RATED_SPEED_FRAC, 0.0, 1.1)
    cap = c.rl_capacity_w * np.clip(movers, 0.0, 1.0) * speed
    return np.asarray(np.where(c.rl_isolated & c.rl_liquid, 0.0, cap), dtype=np.float64)


def thermal_step(c: CoolingState, srv: ServerState, dt_s: float, p: TwinParams) -> tuple[int, int]:
    """Advance rack temperatures and server thermal state; returns (new thermal trips, new leak trips)."""
    n_rack = len(c.rack_inlet_c)
    ok = srv.rack >= 0
    if c.every_server_racked is None:
        c.every_server_racked = bool(ok.all())
    if c.every_server_racked:
        c.rack_heat_w = wsum(srv.rack, srv.power_w, n_rack)
    else:
        c.rack_heat_w = wsum(srv.rack[ok], srv.power_w[ok], n_rack)
    in_rl = c.rack_racklet >= 0
    rated = np.where(in_rl, 0.0, c.rack_capacity_w)
    cap = rated.copy()
    if len(c.rl_capacity_w):
        rl = np.where(in_rl, c.rack_racklet, 0)
        rl_heat = np.bincount(rl[in_rl], weights=c.rack_heat_w[in_rl], minlength=len(c.rl_capacity_w))
        share = np.where(in_rl, c.rack_heat_w / np.maximum(rl_heat[rl], 1e-9), 0.0)
        n_racks = np.bincount(rl[in_rl], minlength=len(c.rl_capacity_w))
        share = np.where(in_rl & (rl_heat[rl] <= 0), 1.0 / np.maximum(n_racks[rl], 1), share)
        cap = np.where(in_rl, racklet_capacity_w(c)[rl] * share, cap)
        rated = np.where(in_rl, c.rl_capacity_w[rl] * np.maximum(share, 1e-3), rated)
    c.rack_cooling_w = cap
    excess = np.maximum(c.rack_heat_w - cap, 0.0)
    target = c.rack_setpoint_c + p.thermal_rise_c * excess / np.maximum(rated, 1.0)
    c.rack_inlet_c += (target - c.rack_inlet_c) * (1.0 - np.exp(-dt_s / p.thermal_tau_s))
    if c.coolest_limit_c is None:
        c.coolest_limit_c = float(srv.max_inlet_c.min()) if len(srv.max_inlet_c) else np.inf
    hot = len(c.rack_inlet_c) > 0 and float(c.rack_inlet_c.max()) > c.coolest_limit_c
    if not hot and not c.any_thermal:
        return 0, _leaks(c, srv, dt_s, p)  # every rack is below every server's limit: nothing to do
    inlet = np.where(ok, c.rack_inlet_c[np.maximum(srv.rack, 0)], 20.0)
    trip_c = _server_trip_c(c, srv, p)
    # Throttle above the limit; release only 1 °C below it (firmware hysteresis, no step-to-step flapping).
    srv.thermal_throttled = (inlet > srv.max_inlet_c) | (srv.thermal_throttled & (inlet > srv.max_inlet_c - 1.0))
    new_trip = srv.powered & ~srv.thermal_tripped & (inlet > trip_c)
    srv.thermal_tripped = (srv.thermal_tripped | new_trip) & ~(inlet < srv.max_inlet_c - 5.0)
    c.any_thermal = any_(srv.thermal_throttled) or any_(srv.thermal_tripped)
    return int(new_trip.sum()), _leaks(c, srv, dt_s, p)


def _server_trip_c(c: CoolingState, srv: ServerState, p: TwinParams) -> FloatArray:
    """Inlet temperature at which each server trips (racklet trip point, else max inlet + margin)."""
    if c.server_trip_c is not None and len(c.server_trip_c) == len(srv.rack):
        return c.server_trip_c
    ok = srv.rack >= 0
    trip_c = srv.max_inlet_c + p.throttle_margin_c
    if len(c.rl_trip_c):
        rl_of_server = np.where(ok, c.rack_racklet[np.maximum(srv.rack, 0)], -1)
        trip_c = np.where(rl_of_server >= 0, c.rl_trip_c[np.maximum(rl_of_server, 0)], trip_c)
    c.server_trip_c = np.asarray(trip_c, dtype=np.float64)
    return c.server_trip_c


def _leaks(c: CoolingState, srv: ServerState, dt_s: float, p: TwinParams) -> int:
    """Count leak time; force racklet servers off when a leak stays un-isolated too long."""
    if not any_(c.rl_leak) and not any_(srv.leak_tripped):
        return 0
    c.rl_leak_s = np.where(c.rl_leak & ~c.rl_isolated, c.rl_leak_s + dt_s, c.rl_leak_s)
    forced = c.rl_leak & (c.rl_leak_s >= p.leak_grace_s)
    ok = srv.rack >= 0
    rl_of_server = np.where(ok, c.rack_racklet[np.maximum(srv.rack, 0)], -1)
    hit = (rl_of_server >= 0) & forced[np.maximum(rl_of_server, 0)]
    new = hit & ~srv.leak_tripped & srv.powered
    srv.leak_tripped = hit | (srv.leak_tripped & (rl_of_server >= 0) & c.rl_leak[np.maximum(rl_of_server, 0)])
    return int(new.sum())
