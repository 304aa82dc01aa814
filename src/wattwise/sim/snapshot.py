"""A frozen view of the twin's state as arrays, for decision policies and benchmarks.

Every array is a read-only copy indexed like the matching ``*_ids`` tuple (which follow
:class:`wattwise.model.graph.SiteGraph`), so a policy can work on it without touching the twin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from wattwise.sim.chain import ups_runtime_s

if TYPE_CHECKING:
    from wattwise.sim.twin import Twin

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
G = TypeVar("G", bound=np.generic)


@dataclass(frozen=True)
class TwinSnapshot:
    """State of the site at ``t_s`` (SI units; arrays are read-only copies).

    Attributes:
        t_s: Simulated time, s.
        server_ids: Server ids (``server_*`` order).
        server_power_w: Power per server, W.
        server_util_frac: CPU utilisation per server (after throttle/cap).
        server_powered: Whether each server has power.
        server_cap_w: Power cap in force per server (inf = none), W.
        server_throttle_frac: Throttle level per server.
        server_inlet_c: Inlet temperature per server, °C.
        psu_ids: PSU ids (``psu_*`` order; servers' then racklets').
        psu_output_w: DC output per PSU, W.
        psu_input_w: AC input per PSU, W.
        psu_load_frac: Output / rating per PSU.
        psu_alive: Whether each PSU delivers (input live, not failed or latched off).
        psu_degradation_frac: Degradation 0 (new) … 1 (failed).
        psu_ripple_v: Output ripple, V.
        psu_temperature_c: PSU temperature, °C.
        ups_ids: UPS ids.
        ups_output_w: UPS output, W.
        ups_capacity_w: UPS rated output, W.
        ups_charge_frac: Battery state of charge (of its usable capacity).
        ups_energy_wh: Battery energy left, Wh.
        ups_runtime_s: Runtime at the present load, s.
        ups_on_battery: Whether each UPS runs from its battery.
        ups_health_frac: Battery state of health.
        feed_ids: Feed ids.
        feed_available: Whether each feed delivers (grid up / generator running, main not tripped).
        feed_load_w: Load per feed, W.
        feed_capacity_w: Capacity per feed, W.
        feed_price_per_kwh: Price signal per feed.
        feed_carbon_g_per_kwh: Carbon signal per feed.
        ats_ids: ATS ids.
        ats_source_index: Active source of each ATS (0 = first of ``sources``).
        pdu_ids: PDU ids.
        phase_load_w: PDU phase loads, shape (n_pdu, 3), W.
        phase_capacity_w: Derated phase capacities, shape (n_pdu, 3), W.
        breaker_tripped: Tripped phase breakers, shape (n_pdu, 3).
        rack_ids: Rack ids.
        rack_inlet_c: Inlet temperature per rack, °C.
        rack_heat_w: Heat per rack, W.
        rack_cooling_w: Cooling capacity available per rack, W.
        service_ids: Service ids.
        service_up: Whether each service is up (dependency closure included).
        service_shed: Whether each service is shed.
        service_throttle_frac: Throttle level per service.
        workload_ids: Workload ids.
        workload_server: Server index of each workload.
        workload_running: Whether each workload runs.
        workload_demand_frac: CPU demand of each workload on its server.
        it_power_w: Total server power, W.
    """

    t_s: float
    server_ids: tuple[str, ...]
    server_power_w: FloatArray
    server_util_frac: FloatArray
    server_powered: BoolArray
    server_cap_w: FloatArray
    server_throttle_frac: FloatArray
    server_inlet_c: FloatArray
    psu_ids: tuple[str, ...]
    psu_output_w: FloatArray
    psu_input_w: FloatArray
    psu_load_frac: FloatArray
    psu_alive: BoolArray
    psu_degradation_frac: FloatArray
    psu_ripple_v: FloatArray
    psu_temperature_c: FloatArray
    ups_ids: tuple[str, ...]
    ups_output_w: FloatArray
    ups_capacity_w: FloatArray
    ups_charge_frac: FloatArray
    ups_energy_wh: FloatArray
    ups_runtime_s: FloatArray
    ups_on_battery: BoolArray
    ups_health_frac: FloatArray
    feed_ids: tuple[str, ...]
    feed_available: BoolArray
    feed_load_w: FloatArray
    feed_capacity_w: FloatArray
    feed_price_per_kwh: FloatArray
    feed_carbon_g_per_kwh: FloatArray
    ats_ids: tuple[str, ...]
    ats_source_index: IntArray
    pdu_ids: tuple[str, ...]
    phase_load_w: FloatArray
    phase_capacity_w: FloatArray
    breaker_tripped: BoolArray
    rack_ids: tuple[str, ...]
    rack_inlet_c: FloatArray
    rack_heat_w: FloatArray
    rack_cooling_w: FloatArray
    service_ids: tuple[str, ...]
    service_up: BoolArray
    service_shed: BoolArray
    service_throttle_frac: FloatArray
    workload_ids: tuple[str, ...]
    workload_server: IntArray
    workload_running: BoolArray
    workload_demand_frac: FloatArray
    it_power_w: float


def _ro(a: npt.NDArray[G]) -> npt.NDArray[G]:
    out: npt.NDArray[G] = np.array(a, copy=True)
    out.flags.writeable = False
    return out


def take_snapshot(twin: Twin) -> TwinSnapshot:
    """Copy the twin's state into a :class:`TwinSnapshot`."""
    s, g, srv, psu, ch, c, ws = twin.site, twin.graph, twin.srv, twin.psu, twin.ch, twin.cool, twin.work
    full = np.maximum(ch.ups_battery_wh * ch.ups_soh_frac, 1e-9)
    psu_temp_c, psu_ripple_v = twin.psu_condition()
    src_idx = (ch.ats_active == ch.ats_sources[:, 1]).astype(np.int64) if len(s.ats) else np.zeros(0, np.int64)
    inlet = (
        np.where(srv.rack >= 0, c.rack_inlet_c[np.maximum(srv.rack, 0)], 20.0)
        if len(c.rack_inlet_c)
        else (np.full(len(srv.rack), 20.0))
    )
    return TwinSnapshot(
        t_s=twin.t_s,
        server_ids=g.server_ids,
        server_power_w=_ro(srv.power_w),
        server_util_frac=_ro(srv.util_frac),
        server_powered=_ro(srv.powered),
        server_cap_w=_ro(srv.cap_w),
        server_throttle_frac=_ro(srv.throttle_frac),
        server_inlet_c=_ro(inlet),
        psu_ids=g.psu_ids,
        psu_output_w=_ro(psu.output_w),
        psu_input_w=_ro(psu.input_w),
        psu_load_frac=_ro(psu.output_w / psu.rating_w),
        psu_alive=_ro(psu.alive),
        psu_degradation_frac=_ro(psu.degradation_frac),
        psu_ripple_v=_ro(psu_ripple_v),
        psu_temperature_c=_ro(psu_temp_c),
        ups_ids=twin.ids["ups"],
        ups_output_w=_ro(ch.ups_output_w),
        ups_capacity_w=_ro(ch.ups_capacity_w),
        ups_charge_frac=_ro(ch.ups_energy_wh / full),
        ups_energy_wh=_ro(ch.ups_energy_wh),
        ups_runtime_s=_ro(ups_runtime_s(ch, twin.params)),
        ups_on_battery=_ro(ch.ups_on_battery),
        ups_health_frac=_ro(ch.ups_soh_frac),
        feed_ids=twin.ids["feed"],
        feed_available=_ro(ch.node_ok[: twin.ix.n_feed]),
        feed_load_w=_ro(ch.node_load_w[: twin.ix.n_feed]),
        feed_capacity_w=_ro(twin.feed_capacity_w),
        feed_price_per_kwh=_ro(ch.price_per_kwh),
        feed_carbon_g_per_kwh=_ro(ch.carbon_g_per_kwh),
        ats_ids=twin.ids["ats"],
        ats_source_index=_ro(src_idx),
        pdu_ids=twin.ids["pdu"],
        phase_load_w=_ro(ch.phase_w),
        phase_capacity_w=_ro(ch.phase_capacity_w),
        breaker_tripped=_ro(ch.phase_tripped),
        rack_ids=twin.ids["rack"],
        rack_inlet_c=_ro(c.rack_inlet_c),
        rack_heat_w=_ro(c.rack_heat_w),
        rack_cooling_w=_ro(c.rack_cooling_w),
        service_ids=twin.ids["service"],
        service_up=_ro(ws.svc_up),
        service_shed=_ro(ws.svc_shed),
        service_throttle_frac=_ro(ws.svc_throttle_frac),
        workload_ids=twin.ids["workload"],
        workload_server=_ro(ws.wl_server),
        workload_running=_ro(ws.wl_running),
        workload_demand_frac=_ro(ws.wl_demand_frac),
        it_power_w=twin.it_power_w,
    )
