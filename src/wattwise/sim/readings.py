"""Readings the twin reports, with canonical metric names (``wattwise.model.metrics``) only.

UPS readings follow NUT: ``battery_charge_frac`` is ``battery.charge``/100, ``battery_runtime_s``
is ``battery.runtime``, ``load_frac`` is ``ups.load``/100, and ``ups_status_flags`` is the
``ups.status`` words as a bitmask with the bits the NUT driver uses
(:class:`wattwise.model.ups_status.UpsStatus`); the words themselves ride in the ``ups.status``
tag (``"OB DISCHRG LB"``). A PDU's phases have one metric each (``current_l1_a``,
``breaker_l1_tripped``...), since its three phase readings share device and time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from wattwise.model.metrics import PHASE_BREAKER_METRICS, PHASE_CURRENT_METRICS, PHASE_NAMES
from wattwise.model.ups_status import on_battery, status_flags
from wattwise.model.values import Reading
from wattwise.sim.chain import ups_runtime_s

if TYPE_CHECKING:
    from wattwise.sim.twin import Twin

FAN_MAX_RPM = 12_000.0
SERVER_MEMORY_GIB = 256.0
"""Installed memory assumed per server (the site model does not carry it)."""
SERVER_OS_GIB = 8.0
"""Memory a powered server uses with no workload (OS, agents, page cache floor)."""
PUMP_MAX_RPM = 4_000.0
FLOW_LPM_PER_KW = 1.5

Rows = list[Reading]


def _emit(out: Rows, ids: tuple[str, ...], metric: str, values: npt.NDArray[np.generic], t_s: float) -> None:
    out.extend(Reading(d, metric, v, t_s) for d, v in zip(ids, values.astype(np.float64).tolist(), strict=True))


def ups_status_words(twin: Twin) -> list[str]:
    """NUT ``ups.status`` words of every UPS (``"OL CHRG"``, ``"OB DISCHRG LB"``…)."""
    ch = twin.ch
    full = np.maximum(ch.ups_battery_wh * ch.ups_soh_frac, 1e-9)
    charge = ch.ups_energy_wh / full
    words = []
    for i in range(len(ch.ups_on_battery)):
        w: list[str] = []
        if ch.ups_off[i]:
            w.append("OFF")
        elif ch.ups_on_battery[i]:
            w += ["OB", "DISCHRG"]
        else:
            w.append("OL")
            if ch.ups_charge_w[i] > 0:
                w.append("CHRG")
        if charge[i] < ch.ups_low_frac[i] and not ch.ups_off[i]:
            w.append("LB")
        if ch.ups_bypass[i]:
            w.append("BYPASS")
        if ch.ups_output_w[i] > ch.ups_capacity_w[i]:
            w.append("OVER")
        if ch.ups_soh_frac[i] < 0.6:
            w.append("RB")
        words.append(" ".join(w))
    return words


def _ups(twin: Twin, t: float, out: Rows) -> None:
    ch, ids = twin.ch, twin.ids["ups"]
    full = np.maximum(ch.ups_battery_wh * ch.ups_soh_frac, 1e-9)
    _emit(out, ids, "output_power_w", ch.ups_output_w, t)
    _emit(out, ids, "input_power_w", ch.ups_input_w, t)
    _emit(out, ids, "load_frac", ch.ups_output_w / ch.ups_capacity_w, t)
    _emit(out, ids, "battery_charge_frac", np.clip(ch.ups_energy_wh / full, 0, 1), t)
    _emit(out, ids, "battery_runtime_s", np.minimum(ups_runtime_s(ch, twin.params), 1e6), t)
    _emit(out, ids, "battery_health_frac", ch.ups_soh_frac, t)
    words = ups_status_words(twin)
    # The NUT driver's rule (a UPS switched off by an empty battery is still without input).
    _emit(out, ids, "on_battery", np.array([on_battery(status_flags(w)) for w in words], dtype=bool), t)
    _emit(out, ids, "low_battery", np.array(["LB" in w.split() for w in words]), t)
    for d, w in zip(ids, words, strict=True):
        out.append(Reading(d, "ups_status_flags", float(status_flags(w)), t, tags=(("ups.status", w),)))


def _feeds(twin: Twin, t: float, out: Rows) -> None:
    ch, ids, n = twin.ch, twin.ids["feed"], twin.ix.n_feed
    _emit(out, ids, "power_w", ch.node_load_w[:n], t)
    _emit(out, ids, "source_available", ch.node_ok[:n], t)
    _emit(out, ids, "capacity_w", twin.feed_capacity_w, t)
    _emit(out, ids, "breaker_tripped", ch.feed_tripped, t)
    _emit(out, ids, "price_per_kwh", ch.price_per_kwh, t)
    _emit(out, ids, "carbon_g_per_kwh", ch.carbon_g_per_kwh, t)


def _ats(twin: Twin, t: float, out: Rows) -> None:
    ch, ix, ids = twin.ch, twin.ix, twin.ids["ats"]
    if not ids:
        return
    _emit(out, ids, "power_w", ch.node_load_w[ix.ats0 : ix.ups0], t)
    _emit(out, ids, "ats_source_index", ch.ats_active == ch.ats_sources[:, 1], t)
    _emit(out, ids, "available", ch.node_ok[ix.ats0 : ix.ups0], t)


def _pdus(twin: Twin, t: float, out: Rows) -> None:
    ch, ix, ids = twin.ch, twin.ix, twin.ids["pdu"]
    _emit(out, ids, "power_w", ch.node_load_w[ix.pdu0 :], t)
    current = (ch.phase_w / ch.phase_voltage_v).tolist()
    tripped = ch.phase_tripped.tolist()
    rated = ch.phase_rated_a.tolist()
    for k, d in enumerate(ids):
        for ph in range(3):
            if rated[k][ph] > 0:
                tag = (("phase", PHASE_NAMES[ph]),)
                out.append(Reading(d, PHASE_CURRENT_METRICS[ph], current[k][ph], t, tags=tag))
                out.append(Reading(d, PHASE_BREAKER_METRICS[ph], float(tripped[k][ph]), t, tags=tag))


def _outlets(twin: Twin, t: float, out: Rows) -> None:
    ch, ids = twin.ch, twin.ids["outlet"]
    _emit(out, ids, "power_w", twin.outlet_power_w(), t)
    _emit(out, ids, "outlet_on", ch.outlet_on, t)


def _psus(twin: Twin, t: float, out: Rows) -> None:
    psu, ids = twin.psu, twin.ids["psu"]
    temperature_c, ripple_v = twin.psu_condition()
    _emit(out, ids, "input_power_w", psu.input_w, t)
    _emit(out, ids, "output_power_w", psu.output_w, t)
    _emit(out, ids, "efficiency_frac", np.where(psu.output_w > 0, psu.efficiency_frac, 0.0), t)
    _emit(out, ids, "load_frac", np.minimum(psu.output_w / psu.rating_w, 5.0), t)
    _emit(out, ids, "temperature_c", temperature_c, t)
    _emit(out, ids, "ripple_v", ripple_v, t)
    _emit(out, ids, "dc_voltage_v", psu.dc_voltage_v * (1.0 - 0.03 * psu.degradation_frac) * psu.alive, t)
    _emit(out, ids, "setpoint_w", np.nan_to_num(psu.setpoint_w, nan=0.0), t)
    _emit(out, ids, "available", psu.alive, t)


def server_memory_frac(twin: Twin) -> npt.NDArray[np.float64]:
    """Memory utilisation of every server.

    Its running workloads' ``memory_gib``, each scaled by its trace's memory curve (Google
    traces; PlanetLab has none: flat), plus the OS floor, over ``SERVER_MEMORY_GIB``.
    """
    ws = twin.work
    _, mem = twin.bank.at(ws.wl_row, twin.t_s + ws.wl_phase_s)
    scale = mem / np.maximum(twin.bank.mem_frac[ws.wl_row].mean(axis=1), 0.02)
    used_gib = np.bincount(
        ws.wl_server,
        weights=twin.wl_memory_gib * np.minimum(scale, 2.0) * ws.wl_running,
        minlength=len(twin.srv.powered),
    )
    base_gib = SERVER_OS_GIB * twin.srv.powered
    return np.asarray(np.clip((used_gib + base_gib) / SERVER_MEMORY_GIB, 0.0, 1.0), dtype=np.float64)


def _servers(twin: Twin, t: float, out: Rows) -> None:
    srv, ids, c = twin.srv, twin.ids["server"], twin.cool
    inlet = np.where(srv.rack >= 0, c.rack_inlet_c[np.maximum(srv.rack, 0)], 20.0)
    _emit(out, ids, "power_w", srv.power_w, t)
    _emit(out, ids, "cpu_frac", srv.util_frac, t)
    _emit(out, ids, "memory_frac", server_memory_frac(twin), t)
    _emit(out, ids, "inlet_temp_c", inlet, t)
    _emit(out, ids, "throttle_frac", srv.throttle_frac, t)
    _emit(out, ids, "power_cap_w", np.where(np.isfinite(srv.cap_w), srv.cap_w, srv.curve_w[:, 10]), t)
    _emit(out, ids, "available", srv.powered & (srv.boot_left_s <= 0), t)


def _racks(twin: Twin, t: float, out: Rows) -> None:
    c, ids = twin.cool, twin.ids["rack"]
    _emit(out, ids, "inlet_temp_c", c.rack_inlet_c, t)
    _emit(out, ids, "heat_w", c.rack_heat_w, t)
    _emit(out, ids, "cooling_capacity_w", c.rack_cooling_w, t)


def _racklets(twin: Twin, t: float, out: Rows) -> None:
    from wattwise.sim.thermal import racklet_capacity_w

    c, ids = twin.cool, twin.ids["racklet"]
    if not ids:
        return
    fans_ok = (c.rl_fans - c.rl_fans_failed) > 0
    pumps_ok = (c.rl_pumps - c.rl_pumps_failed) > 0
    cap = racklet_capacity_w(c)
    _emit(out, ids, "fan_speed_rpm", FAN_MAX_RPM * c.rl_speed_frac * fans_ok, t)
    _emit(out, ids, "pump_speed_rpm", PUMP_MAX_RPM * c.rl_speed_frac * pumps_ok * c.rl_liquid * ~c.rl_isolated, t)
    _emit(out, ids, "coolant_flow_lpm", FLOW_LPM_PER_KW * cap / 1000.0 * c.rl_liquid, t)
    _emit(out, ids, "leak_detected", c.rl_leak, t)
    _emit(out, ids, "loop_isolated", c.rl_isolated, t)
    _emit(out, ids, "cooling_capacity_w", cap, t)
    # Power module: the racklet's DC bus is the last ``len(racklets)`` buses of the graph.
    psu = twin.psu
    rl_bus = psu.bus - (twin.n_bus - len(ids))
    mine = rl_bus >= 0
    n = len(ids)
    out_w = np.bincount(rl_bus[mine], weights=psu.output_w[mine], minlength=n)
    in_w = np.bincount(rl_bus[mine], weights=psu.input_w[mine], minlength=n)
    live_w = np.bincount(rl_bus[mine], weights=(psu.rating_w * psu.alive)[mine], minlength=n)
    _emit(out, ids, "output_power_w", out_w, t)
    _emit(out, ids, "input_power_w", in_w, t)
    _emit(out, ids, "capacity_w", live_w, t)
    _emit(out, ids, "available", live_w > 0, t)


def _processors(twin: Twin, t: float, out: Rows) -> None:
    ws, ids = twin.work, twin.ids["processor"]
    if not ids:
        return
    alive = twin.srv.powered[ws.ep_server] & ~ws.ep_failed
    _emit(out, ids, "cpu_frac", ws.ep_cpu_frac, t)
    _emit(out, ids, "memory_frac", ws.ep_mem_frac, t)
    _emit(out, ids, "network_bps", ws.ep_net_bps, t)
    _emit(out, ids, "heartbeat_gap_s", ws.ep_gap_s, t)
    _emit(out, ids, "lag_s", ws.ep_lag_s, t)
    _emit(out, ids, "available", alive, t)


def _services(twin: Twin, t: float, out: Rows) -> None:
    ws, ids = twin.work, twin.ids["service"]
    _emit(out, ids, "available", ws.svc_up, t)
    _emit(out, ids, "throttle_frac", np.where(ws.svc_shed, 0.0, ws.svc_throttle_frac), t)


COLLECTORS: dict[str, Callable[[Twin, float, Rows], None]] = {
    "feed": _feeds,
    "ats": _ats,
    "ups": _ups,
    "pdu": _pdus,
    "outlet": _outlets,
    "psu": _psus,
    "server": _servers,
    "rack": _racks,
    "racklet": _racklets,
    "processor": _processors,
    "service": _services,
}


def collect_readings(twin: Twin, t_s: float, kinds: Iterable[str] | None = None) -> list[Reading]:
    """Readings of every device of the given kinds (all kinds by default)."""
    out: Rows = []
    for kind in COLLECTORS if kinds is None else kinds:
        COLLECTORS[kind](twin, t_s, out)
    return out
