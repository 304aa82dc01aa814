"""Vectorized state of a whole site: one NumPy array per quantity, never one object per device.

Indices follow :class:`wattwise.model.graph.SiteGraph` (``server_ids``, ``psu_ids``,
``outlet_ids``, ``node_ids``…). The state is mutable and private to the twin; what crosses to
a controller is a :class:`wattwise.sim.snapshot.TwinSnapshot` or readings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wattwise.model.graph import SiteGraph
from wattwise.model.site import Site
from wattwise.sim.curves import FINE_POINTS, psu_curve_table, psu_fine_table, server_curve_w, ups_curve_table
from wattwise.sim.traces import trace_bank

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def wsum(index: IntArray, weights: npt.NDArray[np.generic], n: int) -> FloatArray:
    """Sum ``weights`` into ``n`` bins by ``index`` (``np.bincount`` typed as float64)."""
    return np.asarray(np.bincount(index, weights=weights, minlength=n), dtype=np.float64)


def any_(a: npt.NDArray[np.generic]) -> bool:
    """``a.any()`` without NumPy's Python-level wrapper (called many times per step)."""
    return bool(np.count_nonzero(a))


def all_(a: npt.NDArray[np.generic]) -> bool:
    """``a.all()`` without NumPy's Python-level wrapper."""
    return bool(np.count_nonzero(a) == a.size)


def clip_(a: npt.ArrayLike, lo: float, hi: float) -> FloatArray:
    """``np.clip`` for scalar bounds through two ufuncs (faster on small arrays)."""
    return np.asarray(np.minimum(np.maximum(a, lo), hi), dtype=np.float64)


def _f(n: int, value: float = 0.0) -> FloatArray:
    return np.full(n, value, dtype=np.float64)


def _b(n: int, value: bool = False) -> BoolArray:
    return np.full(n, value, dtype=bool)


@dataclass
class ServerState:
    """Servers: curves, power and lifecycle."""

    curve_w: FloatArray
    bus: IntArray
    rack: IntArray
    max_inlet_c: FloatArray
    powered: BoolArray
    boot_left_s: FloatArray
    first_step: BoolArray
    cap_w: FloatArray
    throttle_frac: FloatArray
    thermal_throttled: BoolArray
    thermal_tripped: BoolArray
    leak_tripped: BoolArray
    cordoned: BoolArray
    util_frac: FloatArray
    power_w: FloatArray
    served_frac: FloatArray
    mem_frac: FloatArray


@dataclass
class PsuState:
    """PSUs (server and racklet rectifiers): sharing, efficiency, degradation."""

    bus: IntArray
    outlet: IntArray
    rating_w: FloatArray
    curve: IntArray
    eff_table: FloatArray
    eff_fine: FloatArray
    eff_offset: IntArray
    weight_w: FloatArray
    setpoint_w: FloatArray
    alive: BoolArray
    failed: BoolArray
    ocp_tripped: BoolArray
    degradation_frac: FloatArray
    degrade_rate_per_s: FloatArray
    output_w: FloatArray
    input_w: FloatArray
    efficiency_frac: FloatArray
    temperature_c: FloatArray
    ripple_v: FloatArray
    dc_voltage_v: FloatArray


@dataclass
class ChainState:
    """Feeds, generators, ATS, UPS, PDUs, phases and outlets."""

    node_ok: BoolArray
    node_load_w: FloatArray
    feed_available: BoolArray
    feed_tripped: BoolArray
    feed_heat: FloatArray
    feed_is_generator: BoolArray
    gen_running: BoolArray
    gen_start_left_s: FloatArray
    gen_failed: BoolArray
    ats_sources: IntArray
    ats_active: IntArray
    ats_transfer_left_s: FloatArray
    ats_transfer_time_s: FloatArray
    ats_return_s: FloatArray
    ats_requested: IntArray
    ups_energy_wh: FloatArray
    ups_battery_wh: FloatArray
    ups_soh_frac: FloatArray
    ups_capacity_w: FloatArray
    ups_low_frac: FloatArray
    ups_eff_table: FloatArray
    ups_on_battery: BoolArray
    ups_bypass: BoolArray
    ups_off: BoolArray
    ups_heat: FloatArray
    ups_input_w: FloatArray
    ups_output_w: FloatArray
    ups_charge_w: FloatArray
    ups_battery_w: FloatArray
    outlet_on: BoolArray
    outlet_ok: BoolArray
    outlet_w: FloatArray
    phase_w: FloatArray
    phase_ok: BoolArray
    phase_heat: FloatArray
    phase_tripped: BoolArray
    phase_rated_a: FloatArray
    phase_voltage_v: FloatArray
    phase_capacity_w: FloatArray
    price_per_kwh: FloatArray
    carbon_g_per_kwh: FloatArray


@dataclass
class CoolingState:
    """Racks (heat, inlet) and racklet cooling modules (fans, pumps, leaks)."""

    rack_racklet: IntArray
    rack_capacity_w: FloatArray
    rack_setpoint_c: FloatArray
    rack_inlet_c: FloatArray
    rack_heat_w: FloatArray
    rack_cooling_w: FloatArray
    rl_capacity_w: FloatArray
    rl_trip_c: FloatArray
    rl_fans: IntArray
    rl_fans_failed: IntArray
    rl_pumps: IntArray
    rl_pumps_failed: IntArray
    rl_liquid: BoolArray
    rl_speed_frac: FloatArray
    rl_leak: BoolArray
    rl_leak_s: FloatArray
    rl_isolated: BoolArray
    server_trip_c: FloatArray | None = None
    coolest_limit_c: float | None = None
    any_thermal: bool = False
    every_server_racked: bool | None = None


@dataclass
class WorkState:
    """Workloads, services, migrations and event processors."""

    wl_server: IntArray
    wl_service: IntArray
    wl_cpu_frac: FloatArray
    wl_row: IntArray
    wl_phase_s: FloatArray
    wl_wanted: BoolArray
    wl_running: BoolArray
    wl_restart_left_s: FloatArray
    wl_state_gib: FloatArray
    wl_migratable: BoolArray
    wl_mig_dest: IntArray
    wl_mig_left_s: FloatArray
    wl_demand_frac: FloatArray
    wl_surge: FloatArray
    svc_tier: IntArray
    svc_shed: BoolArray
    svc_throttle_frac: FloatArray
    svc_up: BoolArray
    dep_src: IntArray
    dep_dst: IntArray
    ep_server: IntArray
    ep_period_s: FloatArray
    ep_sla_s: FloatArray
    ep_mode: IntArray
    ep_shape: IntArray
    ep_since_s: FloatArray
    ep_until_s: FloatArray
    ep_severity: FloatArray
    ep_last_hb_s: FloatArray
    ep_gap_s: FloatArray
    ep_lag_s: FloatArray
    ep_cpu_frac: FloatArray
    ep_mem_frac: FloatArray
    ep_net_bps: FloatArray
    ep_failed: BoolArray
    part_owner: IntArray
    part_rate: FloatArray


def build_servers(site: Site, graph: SiteGraph, rack_index: dict[str, int]) -> ServerState:
    """Server arrays from the site."""
    n = len(site.servers)
    curves = np.array(
        [server_curve_w(s.idle_w, s.peak_w, s.model, s.power_curve_w) for s in site.servers], dtype=np.float64
    ).reshape(n, 11)
    return ServerState(
        curve_w=curves,
        bus=graph.server_bus.copy(),
        rack=np.array([rack_index.get(s.rack, -1) for s in site.servers], dtype=np.int64),
        max_inlet_c=np.array([s.max_inlet_c for s in site.servers], dtype=np.float64),
        powered=_b(n, True),
        boot_left_s=_f(n),
        first_step=_b(n),
        cap_w=_f(n, np.inf),
        throttle_frac=_f(n, 1.0),
        thermal_throttled=_b(n),
        thermal_tripped=_b(n),
        leak_tripped=_b(n),
        cordoned=_b(n),
        util_frac=_f(n),
        power_w=_f(n),
        served_frac=_f(n, 1.0),
        mem_frac=_f(n),
    )


def build_psus(site: Site, graph: SiteGraph) -> PsuState:
    """PSU arrays from the site (server PSUs then racklet rectifiers, as in the graph)."""
    psus = [p for s in site.servers for p in s.psus] + [p for r in site.racklets for p in r.power.psus]
    names = sorted({p.efficiency for p in psus}) or ["80plus_platinum"]
    _, table = psu_curve_table(names)
    n = len(psus)
    curve = np.array([names.index(p.efficiency) for p in psus], dtype=np.int64)
    rating = graph.psu_rating_w.copy()
    return PsuState(
        bus=graph.psu_bus.copy(),
        outlet=graph.psu_outlet.copy(),
        rating_w=rating,
        curve=curve,
        eff_table=table,
        eff_fine=psu_fine_table(names),
        eff_offset=curve * FINE_POINTS,
        weight_w=rating.copy(),
        setpoint_w=_f(n, np.nan),
        alive=_b(n, True),
        failed=_b(n),
        ocp_tripped=_b(n),
        degradation_frac=_f(n),
        degrade_rate_per_s=_f(n),
        output_w=_f(n),
        input_w=_f(n),
        efficiency_frac=_f(n, 0.9),
        temperature_c=_f(n, 30.0),
        ripple_v=_f(n, 0.05),
        dc_voltage_v=np.array(
            [12.0] * sum(len(s.psus) for s in site.servers)
            + [float(r.power.dc_out_v) for r in site.racklets for _ in r.power.psus],
            dtype=np.float64,
        ),
    )


def build_chain(site: Site, graph: SiteGraph) -> ChainState:
    """Power-chain arrays from the site."""
    n_node, n_feed, n_ats, n_ups = len(graph.node_ids), len(site.feeds), len(site.ats), len(site.ups)
    n_pdu, n_out = len(site.pdus), len(graph.outlet_ids)
    idx = graph.node_index
    ats_sources = np.array([[idx[a.sources[0]], idx[a.sources[1]]] for a in site.ats], dtype=np.int64).reshape(n_ats, 2)
    ats_active = np.array([idx[a.preferred_source] for a in site.ats], dtype=np.int64)
    battery = np.array([u.battery_wh for u in site.ups], dtype=np.float64)
    soh = np.array([u.state_of_health_frac for u in site.ups], dtype=np.float64)
    rated_a = np.array([[p.breaker_a] * 3 for p in site.pdus], dtype=np.float64).reshape(n_pdu, 3)
    volts = np.array([[p.voltage_v] * 3 for p in site.pdus], dtype=np.float64).reshape(n_pdu, 3)
    for i, p in enumerate(site.pdus):
        rated_a[i, p.phases :] = 0.0
    return ChainState(
        node_ok=_b(n_node, True),
        node_load_w=_f(n_node),
        feed_available=np.array([f.source != "generator" for f in site.feeds], dtype=bool),
        feed_tripped=_b(n_feed),
        feed_heat=_f(n_feed),
        feed_is_generator=np.array([f.source == "generator" for f in site.feeds], dtype=bool),
        gen_running=_b(n_feed),
        gen_start_left_s=_f(n_feed, np.inf),
        gen_failed=_b(n_feed),
        ats_sources=ats_sources,
        ats_active=ats_active,
        ats_transfer_left_s=_f(n_ats),
        ats_transfer_time_s=np.array([a.transfer_time_s for a in site.ats], dtype=np.float64),
        ats_return_s=_f(n_ats),
        ats_requested=np.full(n_ats, -1, dtype=np.int64),
        ups_energy_wh=battery * soh,
        ups_battery_wh=battery,
        ups_soh_frac=soh,
        ups_capacity_w=np.array([u.capacity_w for u in site.ups], dtype=np.float64),
        ups_low_frac=np.array([u.low_battery_frac for u in site.ups], dtype=np.float64),
        ups_eff_table=ups_curve_table([u.efficiency for u in site.ups]),
        ups_on_battery=_b(n_ups),
        ups_bypass=_b(n_ups),
        ups_off=_b(n_ups),
        ups_heat=_f(n_ups),
        ups_input_w=_f(n_ups),
        ups_output_w=_f(n_ups),
        ups_charge_w=_f(n_ups),
        ups_battery_w=_f(n_ups),
        outlet_on=_b(n_out, True),
        outlet_ok=_b(n_out, True),
        outlet_w=_f(n_out),
        phase_w=np.zeros((n_pdu, 3)),
        phase_ok=rated_a > 0,
        phase_heat=np.zeros((n_pdu, 3)),
        phase_tripped=np.zeros((n_pdu, 3), dtype=bool),
        phase_rated_a=rated_a,
        phase_voltage_v=volts,
        phase_capacity_w=graph.phase_capacity_w.copy(),
        price_per_kwh=_f(n_feed, 0.12),
        carbon_g_per_kwh=_f(n_feed, 300.0),
    )


def build_cooling(site: Site) -> CoolingState:
    """Rack and racklet cooling arrays from the site."""
    rl_index = {r.id: i for i, r in enumerate(site.racklets)}
    n_rl = len(site.racklets)
    setpoint = {r.id: r.cooling.setpoint_inlet_c for r in site.racklets}
    racklet_of = [rl_index.get(r.racklet, -1) if r.racklet else -1 for r in site.racks]
    sp = np.array([setpoint.get(r.racklet or "", 24.0) for r in site.racks], dtype=np.float64)
    return CoolingState(
        rack_racklet=np.array(racklet_of, dtype=np.int64),
        rack_capacity_w=np.array([r.cooling_capacity_w for r in site.racks], dtype=np.float64),
        rack_setpoint_c=sp,
        rack_inlet_c=sp.copy(),
        rack_heat_w=_f(len(site.racks)),
        rack_cooling_w=_f(len(site.racks)),
        rl_capacity_w=np.array([r.cooling.capacity_w for r in site.racklets], dtype=np.float64),
        rl_trip_c=np.array([r.cooling.trip_inlet_c for r in site.racklets], dtype=np.float64),
        rl_fans=np.array([r.cooling.fans for r in site.racklets], dtype=np.int64),
        rl_fans_failed=np.zeros(n_rl, dtype=np.int64),
        rl_pumps=np.array([r.cooling.pumps for r in site.racklets], dtype=np.int64),
        rl_pumps_failed=np.zeros(n_rl, dtype=np.int64),
        rl_liquid=np.array([r.cooling.kind == "liquid" for r in site.racklets], dtype=bool),
        rl_speed_frac=_f(n_rl, 0.8),
        rl_leak=_b(n_rl),
        rl_leak_s=_f(n_rl),
        rl_isolated=_b(n_rl),
    )


def build_work(site: Site, graph: SiteGraph, seed: int) -> WorkState:
    """Workload, service and event-processor arrays; trace phases drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    bank = trace_bank()
    svc_index = {s.id: i for i, s in enumerate(site.services)}
    n_w, n_sv, n_ep = len(site.workloads), len(site.services), len(site.event_processors)
    edges = [(svc_index[s.id], svc_index[d]) for s in site.services for d in s.depends_on]
    ep_index = {e.id: i for i, e in enumerate(site.event_processors)}
    parts = [(ep_index[e.id], p) for e in site.event_processors for p in e.partitions]
    return WorkState(
        wl_server=np.array([graph.server_index[w.server] for w in site.workloads], dtype=np.int64),
        wl_service=np.array([svc_index[w.service] for w in site.workloads], dtype=np.int64),
        wl_cpu_frac=np.array([w.cpu_frac for w in site.workloads], dtype=np.float64),
        wl_row=np.array([bank.row_of(w.trace, i) for i, w in enumerate(site.workloads)], dtype=np.int64),
        wl_phase_s=rng.uniform(0.0, 86_400.0, n_w),
        wl_wanted=_b(n_w, True),
        wl_running=_b(n_w, True),
        wl_restart_left_s=_f(n_w),
        wl_state_gib=np.array([w.state_gib for w in site.workloads], dtype=np.float64),
        wl_migratable=np.array([w.migratable for w in site.workloads], dtype=bool),
        wl_mig_dest=np.full(n_w, -1, dtype=np.int64),
        wl_mig_left_s=_f(n_w),
        wl_demand_frac=_f(n_w),
        wl_surge=_f(n_w, 1.0),
        svc_tier=np.array([s.tier.rank for s in site.services], dtype=np.int64),
        svc_shed=_b(n_sv),
        svc_throttle_frac=_f(n_sv, 1.0),
        svc_up=_b(n_sv, True),
        dep_src=np.array([e[0] for e in edges], dtype=np.int64),
        dep_dst=np.array([e[1] for e in edges], dtype=np.int64),
        ep_server=np.array([graph.server_index[e.server] for e in site.event_processors], dtype=np.int64),
        ep_period_s=np.array([e.heartbeat_period_s for e in site.event_processors], dtype=np.float64),
        ep_sla_s=np.array([e.sla_latency_s for e in site.event_processors], dtype=np.float64),
        ep_mode=np.zeros(n_ep, dtype=np.int64),
        ep_shape=np.zeros(n_ep, dtype=np.int64),
        ep_since_s=_f(n_ep),
        ep_until_s=_f(n_ep),
        ep_severity=_f(n_ep),
        ep_last_hb_s=_f(n_ep),
        ep_gap_s=_f(n_ep),
        ep_lag_s=_f(n_ep),
        ep_cpu_frac=_f(n_ep),
        ep_mem_frac=_f(n_ep),
        ep_net_bps=_f(n_ep),
        ep_failed=_b(n_ep),
        part_owner=np.array([p[0] for p in parts], dtype=np.int64),
        part_rate=rng.uniform(0.05, 0.2, len(parts)),
    )
