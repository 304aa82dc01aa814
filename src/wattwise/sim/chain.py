"""The AC chain: feeds and generators, ATS transfers, UPS batteries, PDU phase breakers, outlets.

Each step runs top-down once to decide what is energised (from the trip and transfer state
left by the previous step), then bottom-up once to sum loads, after which protection
(breakers, UPS overload, feed mains) updates its state for the next step.

* ATS: when its active source is dead and the other is alive it transfers, dark for its
  ``transfer_time_s`` (a UPS below bridges the gap from its battery; a PDU fed straight from
  the ATS drops if the gap exceeds a PSU's hold-up time). It returns to the preferred source
  after it has been back for ``ats_retransfer_s``, or transfers on request.
* Generator feeds start when an ATS using them loses its other source and carry load after
  ``generator_start_s``; they stop when no ATS needs them.
* UPS: double conversion; on battery when its input is dark. Battery energy drains with a
  Peukert factor ``(P/P_rated)^(k-1)`` so runtime grows faster than 1/load at light load; it
  recharges at ``ups_recharge_frac_per_h``; state of health (usable fraction of nameplate Wh)
  falls with discharge throughput. Empty battery → output off until input returns. Overload
  beyond its I²t tolerance sends it to bypass (no battery) until it cools.
* Breakers (PDU phases) and feed mains: thermal I²t accumulators with a pick-up threshold
  and an instantaneous magnetic trip; tripped breakers reset after ``breaker_reset_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wattwise.model.graph import SiteGraph
from wattwise.sim.curves import efficiency_at
from wattwise.sim.params import TwinParams
from wattwise.sim.state import ChainState, all_, any_, clip_

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
PSU_HOLDUP_S = 0.016
"""How long a server PSU rides through a dark input on its bulk capacitors (one 50 Hz cycle and a half)."""


@dataclass(frozen=True)
class ChainIndex:
    """Static layout of the node array (feeds, ATS, UPS, PDUs) of one site."""

    n_feed: int
    n_ats: int
    n_ups: int
    n_pdu: int
    parent: IntArray
    preferred: IntArray
    node_ids: tuple[str, ...]

    @property
    def ats0(self) -> int:
        """First ATS node index."""
        return self.n_feed

    @property
    def ups0(self) -> int:
        """First UPS node index."""
        return self.n_feed + self.n_ats

    @property
    def pdu0(self) -> int:
        """First PDU node index."""
        return self.n_feed + self.n_ats + self.n_ups

    @classmethod
    def of(cls, graph: SiteGraph) -> ChainIndex:
        """Build from a site graph."""
        s = graph.site
        idx = graph.node_index
        return cls(
            len(s.feeds),
            len(s.ats),
            len(s.ups),
            len(s.pdus),
            graph.node_parent.copy(),
            np.array([idx[a.preferred_source] for a in s.ats], dtype=np.int64),
            graph.node_ids,
        )


def _update_ats(ch: ChainState, ix: ChainIndex, feed_ok: BoolArray, dt_s: float, p: TwinParams) -> list[str]:
    """Transfer decisions of every ATS; returns event texts."""
    events: list[str] = []
    if ix.n_ats == 0:
        return events
    settled = (ch.ats_active == ix.preferred) & (ch.ats_requested < 0) & feed_ok[ch.ats_active]
    if all_(settled):
        ch.ats_return_s[:] = 0.0
        return events
    ok = np.zeros(ix.n_feed + ix.n_ats, dtype=bool)
    ok[: ix.n_feed] = feed_ok
    for a in range(ix.n_ats):
        src = ch.ats_sources[a]
        active = int(ch.ats_active[a])
        other = int(src[1] if active == src[0] else src[0])
        pref = int(ix.preferred[a])
        target = -1
        req = int(ch.ats_requested[a])
        if req >= 0:
            ch.ats_requested[a] = -1
            if req != active and ok[req]:
                target = req
        elif not ok[active] and ok[other]:
            target = other
        elif active != pref and ok[pref]:
            ch.ats_return_s[a] += dt_s
            if ch.ats_return_s[a] >= p.ats_retransfer_s:
                target = pref
        if active == pref or not ok[pref]:
            ch.ats_return_s[a] = 0.0
        if target >= 0 and ch.ats_transfer_left_s[a] <= 0:
            ch.ats_active[a] = target
            ch.ats_transfer_left_s[a] = ch.ats_transfer_time_s[a]
            ch.ats_return_s[a] = 0.0
            events.append(f"{ix.node_ids[ix.ats0 + a]} transfers to {ix.node_ids[target]}")
    return events


def _update_generators(ch: ChainState, ix: ChainIndex, dt_s: float, p: TwinParams) -> list[str]:
    """Start generators that an ATS needs; stop them when none does."""
    events: list[str] = []
    grid_ok = ch.feed_available & ~ch.feed_tripped & ~ch.feed_is_generator
    if all_(grid_ok | ch.feed_is_generator) and not any_(ch.gen_running) and all_(np.isinf(ch.gen_start_left_s)):
        return events  # every grid feed is up and no generator is running: nothing to decide
    needed = np.zeros(ix.n_feed, dtype=bool)
    for a in range(ix.n_ats):
        s0, s1 = (int(x) for x in ch.ats_sources[a])
        for gen, other in ((s0, s1), (s1, s0)):
            if ch.feed_is_generator[gen] and not ch.feed_is_generator[other] and not grid_ok[other]:
                needed[gen] = True
            if ch.feed_is_generator[gen] and int(ch.ats_active[a]) == gen:
                needed[gen] |= not grid_ok[other]
    starting = needed & ~ch.gen_running & ~np.isfinite(ch.gen_start_left_s) & ~ch.gen_failed
    ch.gen_start_left_s[starting] = p.generator_start_s
    ch.gen_start_left_s = np.where(np.isfinite(ch.gen_start_left_s), ch.gen_start_left_s - dt_s, np.inf)
    ready = needed & (ch.gen_start_left_s <= 0) & ~ch.gen_failed
    for g in np.flatnonzero(ready & ~ch.gen_running):
        events.append(f"{ix.node_ids[g]} running and ready for load")
    for g in np.flatnonzero(starting):
        events.append(f"{ix.node_ids[g]} starting")
    ch.gen_running = (ch.gen_running | ready) & needed & ~ch.gen_failed
    ch.gen_start_left_s[~needed | ch.gen_running] = np.inf
    return events


def energize(ch: ChainState, ix: ChainIndex, dt_s: float, p: TwinParams) -> tuple[FloatArray, list[str]]:
    """Top-down pass: which nodes, phases and outlets are live; returns each UPS's dark fraction."""
    events = _update_generators(ch, ix, dt_s, p)
    feed_ok = np.where(ch.feed_is_generator, ch.gen_running, ch.feed_available) & ~ch.feed_tripped
    events += _update_ats(ch, ix, feed_ok, dt_s, p)
    ok = ch.node_ok
    ok[: ix.n_feed] = feed_ok
    dark = np.zeros(len(ok), dtype=np.float64)  # fraction of this step each node's output is dark
    dark[: ix.n_feed] = (~feed_ok).astype(np.float64)
    a_sl = slice(ix.ats0, ix.ups0)
    ats_dark_part = np.minimum(ch.ats_transfer_left_s, dt_s) / dt_s
    ok[a_sl] = feed_ok[ch.ats_active] if ix.n_ats else ok[a_sl]
    dark[a_sl] = np.where(ok[a_sl], ats_dark_part, 1.0)
    ch.ats_transfer_left_s = np.maximum(0.0, ch.ats_transfer_left_s - dt_s)
    u_sl = slice(ix.ups0, ix.pdu0)
    up_parent = ix.parent[u_sl]
    ups_dark = np.where(ch.ups_bypass, np.ceil(dark[up_parent]), dark[up_parent])
    input_ok = ok[up_parent]
    ch.ups_off &= ~(input_ok & (ups_dark < 1.0))  # a UPS switched off by an empty battery restarts on input
    has_battery = ch.ups_energy_wh > 1e-9
    ups_ok = ~ch.ups_off & ((ups_dark < 1.0) | (has_battery & ~ch.ups_bypass))
    ok[u_sl] = ups_ok
    dark[u_sl] = 0.0
    d_sl = slice(ix.pdu0, None)
    pdu_parent = ix.parent[d_sl]
    # A PDU hanging straight off an ATS or feed (no UPS) drops when the gap exceeds PSU hold-up.
    parent_dark_s = dark[pdu_parent] * dt_s
    ok[d_sl] = ok[pdu_parent] & (parent_dark_s <= PSU_HOLDUP_S)
    ch.phase_ok = ok[d_sl][:, None] & ~ch.phase_tripped & (ch.phase_rated_a > 0)
    return ups_dark, events


def outlets_live(ch: ChainState, outlet_slot: IntArray) -> BoolArray:
    """Outlets that deliver power now (``outlet_slot`` = PDU index × 3 + phase)."""
    ch.outlet_ok = ch.phase_ok.ravel()[outlet_slot] & ch.outlet_on
    return ch.outlet_ok


def ups_step(ch: ChainState, output_w: FloatArray, dark: FloatArray, dt_s: float, p: TwinParams) -> None:
    """UPS conversion, battery discharge/charge (Peukert), ageing and the input power drawn."""
    n = len(output_w)
    load = output_w / ch.ups_capacity_w
    eff = efficiency_at(ch.ups_eff_table, np.arange(n, dtype=np.int64), load)
    eff = np.maximum(eff, 0.3)
    conv_in = output_w / eff
    live = ~ch.ups_off
    battery_w = np.where(ch.ups_bypass | ~live, 0.0, conv_in * dark)
    full_wh = ch.ups_battery_wh * ch.ups_soh_frac
    room_wh = np.maximum(full_wh - ch.ups_energy_wh, 0.0)
    can_charge = live & (dark < 1.0) & (room_wh > 0)
    charge_w = np.where(can_charge, np.minimum(p.ups_recharge_frac_per_h * full_wh, room_wh * 3600.0 / dt_s), 0.0)
    charge_w *= 1.0 - dark
    grid_share = np.where(ch.ups_bypass, output_w, conv_in * (1.0 - dark))
    ch.ups_input_w = np.where(live, grid_share + charge_w, 0.0)
    peukert = np.maximum(battery_w / ch.ups_capacity_w, 0.05) ** (p.peukert_exponent - 1.0)
    drained_wh = battery_w * peukert * dt_s / 3600.0
    ch.ups_energy_wh = np.minimum(
        np.maximum(ch.ups_energy_wh - drained_wh + 0.9 * charge_w * dt_s / 3600.0, 0.0), full_wh
    )
    ch.ups_soh_frac = np.maximum(
        0.0, ch.ups_soh_frac - p.ups_soh_loss_per_full_cycle_frac * drained_wh / ch.ups_battery_wh
    )
    ch.ups_on_battery = (battery_w > 0) & live
    empty = ch.ups_on_battery & (ch.ups_energy_wh <= 1e-9) & (dark >= 1.0)
    ch.ups_off |= empty
    ch.ups_output_w = np.where(live, output_w, 0.0)
    ch.ups_charge_w = charge_w
    ch.ups_battery_w = battery_w
    ratio = load
    heat = ch.ups_heat + dt_s * np.where(ratio > 1.0, ratio**2 - 1.0, -0.5) / p.ups_overload_k_s
    ch.ups_heat = clip_(heat, 0.0, 1.0)
    ch.ups_bypass = (ch.ups_bypass & (ch.ups_heat > 0)) | (ch.ups_heat >= 1.0) | (ratio > 1.5)


def ups_runtime_s(ch: ChainState, p: TwinParams) -> FloatArray:
    """NUT ``battery.runtime``: seconds the stored energy lasts at the present output."""
    n = len(ch.ups_output_w)
    load = ch.ups_output_w / ch.ups_capacity_w
    eff = np.maximum(efficiency_at(ch.ups_eff_table, np.arange(n, dtype=np.int64), load), 0.3)
    draw_w = np.maximum(ch.ups_output_w / eff, 0.01 * ch.ups_capacity_w)
    peukert = np.maximum(draw_w / ch.ups_capacity_w, 0.05) ** (p.peukert_exponent - 1.0)
    return np.asarray(ch.ups_energy_wh * 3600.0 / (draw_w * peukert), dtype=np.float64)


def upstream_loads(ch: ChainState, ix: ChainIndex, pdu_w: FloatArray) -> FloatArray:
    """Sum UPS inputs and PDU loads up through ATS to feeds; returns every node's load, W."""
    n = ix.pdu0 + ix.n_pdu
    parent = ix.parent.copy()
    parent[ix.ats0 : ix.ups0] = ch.ats_active
    load = np.zeros(n, dtype=np.float64)
    load[ix.pdu0 :] = pdu_w
    draw = load.copy()
    draw[ix.ups0 : ix.pdu0] = ch.ups_input_w
    below = slice(ix.ups0, n)
    acc = np.bincount(parent[below], weights=draw[below], minlength=n)
    load[ix.ups0 : ix.pdu0] = ch.ups_output_w
    load[ix.ats0 : ix.ups0] = acc[ix.ats0 : ix.ups0]
    ats_w = load[ix.ats0 : ix.ups0]
    acc += np.bincount(parent[ix.ats0 : ix.ups0], weights=ats_w, minlength=n)
    load[: ix.n_feed] = acc[: ix.n_feed]
    ch.node_load_w = load
    return load


def _i2t(heat: FloatArray, ratio: FloatArray, dt_s: float, k_s: float, pickup: float) -> FloatArray:
    """Advance a thermal trip accumulator (1.0 = trip); it cools with time constant ``k_s``."""
    warm = np.where(ratio > pickup, (ratio**2 - 1.0) / k_s * dt_s, -heat * dt_s / k_s)
    return clip_(heat + warm, 0.0, 1.0)


def protect(ch: ChainState, feed_cap_w: FloatArray, dt_s: float, p: TwinParams) -> tuple[BoolArray, BoolArray]:
    """Advance breaker and feed-main accumulators; returns (new phase trips, new feed trips)."""
    current_a = ch.phase_w / ch.phase_voltage_v
    ratio = np.where(ch.phase_rated_a > 0, current_a / np.maximum(ch.phase_rated_a, 1e-9), 0.0)
    ch.phase_heat = _i2t(ch.phase_heat, ratio, dt_s, p.breaker_trip_k_s, p.breaker_pickup_frac)
    new_phase = ~ch.phase_tripped & ((ch.phase_heat >= 1.0) | (ratio > p.breaker_magnetic_frac))
    ch.phase_tripped |= new_phase
    feed_ratio = ch.node_load_w[: len(feed_cap_w)] / feed_cap_w
    ch.feed_heat = _i2t(ch.feed_heat, feed_ratio, dt_s, p.feed_trip_k_s, p.breaker_pickup_frac)
    new_feed = ~ch.feed_tripped & (ch.feed_heat >= 1.0)
    ch.feed_tripped |= new_feed
    return new_phase, new_feed
