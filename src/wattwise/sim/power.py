"""Server power from utilisation, DC-bus sharing between PSUs, PSU efficiency and degradation.

* Server: P(u) on its 11-point SPECpower curve; a power cap clips P and the throughput with
  it; a throttle level scales utilisation (and so throughput); booting servers draw 80 % of
  peak, and ``inrush_factor`` × peak on the first step after power returns.
* PSU: every live PSU of a DC bus carries a share of the bus load proportional to its
  set-point weight (``weight_w``; equal ratings share equally; weight 0 = hot standby, which
  still takes load if no weighted PSU is left). Input = output / η(load) on its 80 PLUS
  curve (looked up on a 1/4000-of-rating grid), lowered by degradation; a live PSU carrying
  nothing draws a no-load loss. Output
  above ``psu_ocp_frac`` × rating latches over-current protection off (reset by cycling the
  outlet). Degradation rises at an injected rate, faster under load (heat), raising ripple
  and temperature and lowering efficiency until the unit fails at 1.0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wattwise.sim.curves import PSU_STANDBY_LOSS_FRAC, efficiency_fine, interp_rows
from wattwise.sim.params import TwinParams
from wattwise.sim.state import PsuState, ServerState, any_

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DEGRADED_EFFICIENCY_LOSS_FRAC = 0.12
"""Efficiency lost (absolute) by a PSU at degradation 1.0 (aged capacitors, hot magnetics)."""


def bus_alive(psu: PsuState, outlet_ok: BoolArray, n_bus: int) -> BoolArray:
    """Mark live PSUs (input energised, not failed, not latched off) and return live buses."""
    psu.alive = outlet_ok[psu.outlet] & ~psu.failed & ~psu.ocp_tripped
    return np.bincount(psu.bus, weights=psu.alive.astype(np.float64), minlength=n_bus) > 0


def server_power(srv: ServerState, demand_frac: FloatArray, p: TwinParams, fast: bool = False) -> None:
    """Set utilisation, power and served throughput of every server for this step.

    ``fast`` (every server powered and booted, no cap, throttle or thermal throttling in force)
    skips the masks that only matter otherwise.
    """
    u_want = np.minimum(demand_frac, 1.0)
    if fast:
        srv.util_frac = u_want
        srv.power_w = interp_rows(srv.curve_w, u_want)
        srv.served_frac[:] = 1.0
        return
    booting = srv.powered & (srv.boot_left_s > 0)
    running = srv.powered & ~booting
    scale = srv.throttle_frac * np.where(srv.thermal_throttled, p.thermal_throttle_frac, 1.0)
    u = u_want * scale
    power = interp_rows(srv.curve_w, u)
    idle, peak = srv.curve_w[:, 0], srv.curve_w[:, 10]
    capped = power > srv.cap_w
    if capped.any():
        # Capping lowers utilisation to where P(u) meets the cap (linear between idle and P(u)).
        span = np.maximum(power - idle, 1e-9)
        keep = np.clip((srv.cap_w - idle) / span, 0.0, 1.0)
        u = np.where(capped, u * keep, u)
        power = np.where(capped, np.maximum(np.minimum(srv.cap_w, power), idle), power)
    served = np.where(u_want > 1e-9, u / np.maximum(u_want, 1e-9), 1.0)
    boot_w = np.where(srv.first_step, p.inrush_factor * peak, 0.8 * peak)
    srv.power_w = np.where(running, power, np.where(booting, boot_w, 0.0))
    srv.util_frac = np.where(running, u, 0.0)
    srv.served_frac = np.where(running, served, 0.0)
    srv.first_step[:] = False


def bus_shares(psu: PsuState, n_bus: int) -> FloatArray:
    """Share of its bus's load each PSU carries, by set-point weight among live units."""
    w = psu.weight_w * psu.alive
    wsum = np.bincount(psu.bus, weights=w, minlength=n_bus)[psu.bus]
    unweighted = (wsum <= 0) & psu.alive
    if unweighted.any():
        # Only hot-standby units are left on these buses: they share equally.
        n_alive = np.bincount(psu.bus[unweighted], minlength=n_bus)[psu.bus]
        w = np.where(unweighted, 1.0, w)
        wsum = np.where(unweighted, n_alive, wsum)
    return np.asarray(w / np.maximum(wsum, 1e-12), dtype=np.float64)


def psu_input(psu: PsuState, dt_s: float, p: TwinParams) -> int:
    """Efficiency, input power, degradation and protection of every PSU; returns new OCP trips."""
    load = psu.output_w / psu.rating_w
    eff = efficiency_fine(psu.eff_fine, psu.eff_offset, load)
    degrading = any_(psu.degrade_rate_per_s) or any_(psu.degradation_frac)
    if degrading:
        eff = np.maximum(eff - DEGRADED_EFFICIENCY_LOSS_FRAC * psu.degradation_frac, 0.3)
    psu.efficiency_frac = eff
    psu.input_w = np.where(psu.output_w > 0, psu.output_w / eff, psu.alive * (PSU_STANDBY_LOSS_FRAC * psu.rating_w))
    if degrading:
        psu.degradation_frac = np.minimum(
            1.0, psu.degradation_frac + psu.degrade_rate_per_s * dt_s * (0.5 + np.clip(load, 0.0, 2.0)) * psu.alive
        )
        psu.failed |= psu.degradation_frac >= 1.0
    new_ocp = psu.output_w > p.psu_ocp_frac * psu.rating_w
    if not any_(new_ocp):
        return 0
    new_ocp &= psu.alive & ~psu.ocp_tripped
    psu.ocp_tripped |= new_ocp
    return int(new_ocp.sum())


TEMP_NOISE_C = 0.5
"""Standard deviation of a PSU temperature sensor reading (typical ±1 °C accuracy class)."""
RIPPLE_NOISE_V = 0.008
"""Standard deviation of a ripple measurement (ADC resolution and switching noise)."""


def psu_condition(
    psu: PsuState, inlet_c: FloatArray, rng: np.random.Generator | None = None
) -> tuple[FloatArray, FloatArray]:
    """(temperature °C, output ripple V) of every PSU from its inlet, load and degradation.

    Temperature rises with load and degradation; ripple rises with load a little and with
    degradation quadratically (ageing bulk capacitors). ``rng`` adds sensor noise.
    """
    load = np.clip(psu.output_w / psu.rating_w, 0.0, 2.0)
    temperature_c = inlet_c + 18.0 * load + 30.0 * psu.degradation_frac
    ripple_v = 0.025 + 0.03 * load + 0.6 * psu.degradation_frac**2
    if rng is not None:
        temperature_c = temperature_c + rng.normal(0.0, TEMP_NOISE_C, len(load))
        ripple_v = np.maximum(ripple_v + rng.normal(0.0, RIPPLE_NOISE_V, len(load)), 0.0)
    return np.asarray(temperature_c, dtype=np.float64), np.asarray(ripple_v * psu.alive, dtype=np.float64)
