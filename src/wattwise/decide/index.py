"""The site as flat, read-only NumPy arrays: the topology every policy works on.

:class:`SiteIndex` is built once per site (``SiteIndex.from_site``) and shared by every state
value; a policy call then only does array work. Everything is in site order: ``servers[i]``
of the site is row ``i`` of every per-server array, and so on for PSUs (servers' PSUs, then
racklets' rectifiers, as :class:`~wattwise.model.graph.SiteGraph` orders them), upstream
nodes (feeds, ATS, UPS, PDUs), services, workloads, racks, racklets and event processors.

Tests and benchmarks may also build an index directly from arrays (``SiteIndex(...)``), which
is how the property tests generate thousands of small random sites per second.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from wattwise.model.graph import SiteGraph
from wattwise.model.site import Site

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

KIND_FEED, KIND_ATS, KIND_UPS, KIND_PDU = 0, 1, 2, 3


@dataclass(frozen=True, eq=False)
class SiteIndex:
    """Read-only arrays describing one site's topology (no live values).

    Attributes:
        server_ids: Server ids.
        server_idle_w: Idle power per server, W.
        server_peak_w: Peak power per server, W.
        server_rack: Rack index per server.
        server_bus: DC bus index per server (-1: none).
        server_switchable: Whether wattwise may power a server off at its outlets: it has its
            own PSUs (racklet-fed servers share rectifiers) and hosts no event processor (a
            processor is no service the allocation sheds; powering its host off would stop its
            partitions).
        psu_ids: PSU ids (servers' PSUs, then racklets' rectifiers).
        psu_outlet_ids: Outlet id feeding each PSU.
        psu_bus: Bus index per PSU.
        psu_rating_w: Output rating per PSU, W.
        psu_curve: Efficiency-curve index per PSU (into ``curve_names``).
        curve_names: Efficiency-curve names used by PSUs (``80plus_platinum``...).
        psu_pdu: PDU position (among PDUs) per PSU.
        psu_phase: PDU phase (0-based) per PSU.
        node_ids: Feeds, ATS, UPS, PDUs.
        node_kind: KIND_* per node.
        node_parent: Parent node per node (ATS: preferred source; feeds: -1).
        node_capacity_w: Continuous capacity per node, W.
        pdu_node: Node index of each PDU.
        phase_capacity_w: (n_pdu, 3) phase capacities, W (0: absent phase).
        ats_sources: (n_ats, 2) node indices of each ATS's sources.
        ups_node: Node index of each UPS.
        ups_battery_wh: Nameplate battery energy per UPS, Wh.
        ups_soh_frac: Battery state of health per UPS.
        ups_low_battery_frac: Charge below which the UPS signals low battery.
        service_ids: Service ids.
        service_rank: Tier rank per service (0 critical … 3 low).
        service_eff_rank: Inherited rank: min of own rank and every dependant's rank.
        service_levels_frac: (n_service, n_level) allowed levels, 1.0 first, padded with 0.
        service_n_levels: Allowed on-levels per service (levels below min_power_frac removed).
        service_flexible: Whether the service may be deferred in time.
        service_restore_order: Operator restore-order hint.
        dep_src: Dependency edges: ``dep_src[k]`` depends on ``dep_dst[k]``.
        dep_dst: See ``dep_src``.
        service_dep_level: 0 for services nothing depends on, else 1 + max over dependants.
        service_topo: Service indices, dependencies before dependants (restore order).
        service_n_dependants: Transitive dependants per service.
        service_dep_depth: 0 for services with no dependency, else 1 + max over dependencies.
        wl_ids: Workload ids.
        wl_server: Server index per workload.
        wl_service: Service index per workload.
        wl_cpu_frac: CPU share per workload.
        wl_state_gib: State to copy on migration, GiB.
        wl_migratable: Whether the workload can be live-migrated.
        rack_ids: Rack ids.
        rack_racklet: Racklet index per rack (-1: none).
        rack_cooling_capacity_w: Cooling capacity per rack, W.
        racklet_ids: Racklet ids.
        racklet_cooling_capacity_w: Cooling module capacity per racklet, W.
        racklet_trip_inlet_c: Inlet temperature that trips the racklet, °C.
        racklet_setpoint_inlet_c: Nominal inlet set-point per racklet, °C.
        runtime_target_s: Battery runtime target per tier rank (4 values), s.
    """

    server_ids: tuple[str, ...]
    server_idle_w: FloatArray
    server_peak_w: FloatArray
    server_rack: IntArray
    server_bus: IntArray
    server_switchable: BoolArray
    psu_ids: tuple[str, ...]
    psu_outlet_ids: tuple[str, ...]
    psu_bus: IntArray
    psu_rating_w: FloatArray
    psu_curve: IntArray
    curve_names: tuple[str, ...]
    psu_pdu: IntArray
    psu_phase: IntArray
    node_ids: tuple[str, ...]
    node_kind: IntArray
    node_parent: IntArray
    node_capacity_w: FloatArray
    pdu_node: IntArray
    phase_capacity_w: FloatArray
    ats_sources: IntArray
    ups_node: IntArray
    ups_battery_wh: FloatArray
    ups_soh_frac: FloatArray
    ups_low_battery_frac: FloatArray
    service_ids: tuple[str, ...]
    service_rank: IntArray
    service_eff_rank: IntArray
    service_levels_frac: FloatArray
    service_n_levels: IntArray
    service_flexible: BoolArray
    service_restore_order: IntArray
    dep_src: IntArray
    dep_dst: IntArray
    service_dep_level: IntArray
    service_topo: IntArray
    service_n_dependants: IntArray
    service_dep_depth: IntArray
    wl_ids: tuple[str, ...]
    wl_server: IntArray
    wl_service: IntArray
    wl_cpu_frac: FloatArray
    wl_state_gib: FloatArray
    wl_migratable: BoolArray
    rack_ids: tuple[str, ...]
    rack_racklet: IntArray
    rack_cooling_capacity_w: FloatArray
    racklet_ids: tuple[str, ...]
    racklet_cooling_capacity_w: FloatArray
    racklet_trip_inlet_c: FloatArray
    racklet_setpoint_inlet_c: FloatArray
    runtime_target_s: FloatArray

    def __post_init__(self) -> None:
        for value in self.__dict__.values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False

    @property
    def n_bus(self) -> int:
        """Number of DC buses."""
        return int(self.psu_bus.max()) + 1 if len(self.psu_bus) else 0

    @classmethod
    def from_site(cls, site: Site) -> SiteIndex:
        """Flatten a validated site (a few passes over its lists; do it once per site)."""
        g = SiteGraph(site)
        return cls(**_power_arrays(site, g), **_service_arrays(site, g), **_rack_arrays(site, g))


def _power_arrays(site: Site, g: SiteGraph) -> dict[str, Any]:
    psus = [p for s in site.servers for p in s.psus] + [p for r in site.racklets for p in r.power.psus]
    curves = tuple(sorted({p.efficiency for p in psus}))
    n_feed, n_ats, n_ups = len(site.feeds), len(site.ats), len(site.ups)
    kind = np.repeat(np.arange(4), [n_feed, n_ats, n_ups, len(site.pdus)])
    rt = site.runtime_targets
    ep_hosts = {e.server for e in site.event_processors}
    return {
        "server_ids": g.server_ids,
        "server_idle_w": g.server_idle_w.copy(),
        "server_peak_w": g.server_peak_w.copy(),
        "server_bus": g.server_bus.copy(),
        "server_switchable": np.array(
            [bool(s.psus) and s.id not in ep_hosts for s in site.servers],
            dtype=bool,
        ),
        "psu_ids": g.psu_ids,
        "psu_outlet_ids": tuple(p.input for p in psus),
        "psu_bus": g.psu_bus.copy(),
        "psu_rating_w": g.psu_rating_w.copy(),
        "psu_curve": np.array([curves.index(p.efficiency) for p in psus], dtype=np.int64),
        "curve_names": curves,
        "psu_pdu": g.outlet_pdu[g.psu_outlet].copy() if psus else np.zeros(0, np.int64),
        "psu_phase": g.outlet_phase[g.psu_outlet].copy() if psus else np.zeros(0, np.int64),
        "node_ids": g.node_ids,
        "node_kind": kind.astype(np.int64),
        "node_parent": g.node_parent.copy(),
        "node_capacity_w": g.node_capacity_w.copy(),
        "pdu_node": np.arange(len(site.pdus), dtype=np.int64) + n_feed + n_ats + n_ups,
        "phase_capacity_w": g.phase_capacity_w.copy(),
        "ats_sources": np.array([[g.node_index[s] for s in a.sources] for a in site.ats], dtype=np.int64).reshape(
            -1, 2
        ),
        "ups_node": np.array([g.node_index[u.id] for u in site.ups], dtype=np.int64),
        "ups_battery_wh": np.array([u.battery_wh for u in site.ups], dtype=np.float64),
        "ups_soh_frac": np.array([u.state_of_health_frac for u in site.ups], dtype=np.float64),
        "ups_low_battery_frac": np.array([u.low_battery_frac for u in site.ups], dtype=np.float64),
        "runtime_target_s": np.array([rt.critical_s, rt.high_s, rt.medium_s, rt.low_s], dtype=np.float64),
    }


def _service_arrays(site: Site, g: SiteGraph) -> dict[str, Any]:
    sid = {s.id: i for i, s in enumerate(site.services)}
    n = len(site.services)
    rank = np.array([s.tier.rank for s in site.services], dtype=np.int64)
    max_levels = max((len(s.throttle_levels_frac) for s in site.services), default=1)
    levels = np.zeros((n, max_levels), dtype=np.float64)
    n_levels = np.zeros(n, dtype=np.int64)
    for i, s in enumerate(site.services):
        allowed = [v for v in s.throttle_levels_frac if v >= s.min_power_frac] or [1.0]
        levels[i, : len(allowed)] = allowed
        n_levels[i] = len(allowed)
    src = np.array([sid[s.id] for s in site.services for _ in s.depends_on], dtype=np.int64)
    dst = np.array([sid[d] for s in site.services for d in s.depends_on], dtype=np.int64)
    wl = site.workloads
    srv = g.server_index
    return {
        "service_ids": tuple(s.id for s in site.services),
        "service_rank": rank,
        "service_levels_frac": levels,
        "service_n_levels": n_levels,
        "service_flexible": np.array([s.flexible for s in site.services], dtype=bool),
        "service_restore_order": np.array([s.restore_order for s in site.services], dtype=np.int64),
        "dep_src": src,
        "dep_dst": dst,
        "service_topo": np.array([sid[s] for s in g.dependency_order], dtype=np.int64),
        **dag_arrays(rank, src, dst),
        "wl_ids": tuple(w.id for w in wl),
        "wl_server": np.array([srv[w.server] for w in wl], dtype=np.int64),
        "wl_service": np.array([sid[w.service] for w in wl], dtype=np.int64),
        "wl_cpu_frac": np.array([w.cpu_frac for w in wl], dtype=np.float64),
        "wl_state_gib": np.array([w.state_gib for w in wl], dtype=np.float64),
        "wl_migratable": np.array([w.migratable for w in wl], dtype=bool),
    }


def dag_arrays(rank: IntArray, src: IntArray, dst: IntArray) -> dict[str, IntArray]:
    """Inherited rank, dependant level and dependant count of a service DAG.

    ``src[k]`` depends on ``dst[k]``. A dependency inherits the most important rank of
    anything that (transitively) depends on it (priority inheritance), so keeping a critical
    service up never counts as a priority inversion for the low-tier service it needs.

    >>> r = dag_arrays(np.array([3, 0]), np.array([1]), np.array([0]))
    >>> r["service_eff_rank"].tolist(), r["service_dep_level"].tolist(), r["service_n_dependants"].tolist()
    ([0, 0], [1, 0], [1, 0])
    """
    n = len(rank)
    children: list[list[int]] = [[] for _ in range(n)]  # dependency -> its direct dependants
    for a, b in zip(src.tolist(), dst.tolist(), strict=True):
        children[b].append(a)
    eff = rank.copy()
    level = np.zeros(n, dtype=np.int64)
    n_dep = np.zeros(n, dtype=np.int64)
    order = _dependants_first(children, n)
    parents: list[list[int]] = [[] for _ in range(n)]
    for a, b in zip(src.tolist(), dst.tolist(), strict=True):
        parents[a].append(b)
    depth = np.zeros(n, dtype=np.int64)
    for a in reversed(order):  # dependencies are finished before their dependants
        if parents[a]:
            depth[a] = 1 + max(int(depth[b]) for b in parents[a])
    for b in order:  # dependants are finished before their dependencies
        kids = children[b]
        if kids:
            eff[b] = min(int(eff[b]), min(int(eff[k]) for k in kids))
            level[b] = 1 + max(int(level[k]) for k in kids)
            seen: set[int] = set()
            todo = list(kids)
            while todo:
                k = todo.pop()
                if k not in seen:
                    seen.add(k)
                    todo.extend(children[k])
            n_dep[b] = len(seen)
    return {
        "service_eff_rank": eff,
        "service_dep_level": level,
        "service_n_dependants": n_dep,
        "service_dep_depth": depth,
    }


def _dependants_first(children: list[list[int]], n: int) -> list[int]:
    """Post-order over the dependant relation: every node after all of its dependants."""
    out: list[int] = []
    done = [False] * n
    for root in range(n):
        stack = [(root, False)]
        while stack:
            v, expanded = stack.pop()
            if done[v]:
                continue
            if expanded:
                done[v] = True
                out.append(v)
                continue
            stack.append((v, True))
            stack.extend((k, False) for k in children[v] if not done[k])
    return out


def _rack_arrays(site: Site, g: SiteGraph) -> dict[str, Any]:
    rl = {r.id: i for i, r in enumerate(site.racklets)}
    rack = {r.id: i for i, r in enumerate(site.racks)}
    return {
        "server_rack": np.array([rack.get(s.rack, -1) for s in site.servers], dtype=np.int64),
        "rack_ids": tuple(r.id for r in site.racks),
        "rack_racklet": np.array([rl.get(r.racklet, -1) if r.racklet else -1 for r in site.racks], dtype=np.int64),
        "rack_cooling_capacity_w": np.array([r.cooling_capacity_w for r in site.racks], dtype=np.float64),
        "racklet_ids": tuple(r.id for r in site.racklets),
        "racklet_cooling_capacity_w": np.array([r.cooling.capacity_w for r in site.racklets], dtype=np.float64),
        "racklet_trip_inlet_c": np.array([r.cooling.trip_inlet_c for r in site.racklets], dtype=np.float64),
        "racklet_setpoint_inlet_c": np.array([r.cooling.setpoint_inlet_c for r in site.racklets], dtype=np.float64),
    }
