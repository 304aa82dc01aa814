"""Build API views from the site model and chain loads (shared by every backend).

An adapter that holds a :class:`SiteGraph` and a :class:`ChainLoads` (from telemetry or the
twin) gets the topology, headroom and UPS views by calling these functions.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from wattwise.api.schemas import (
    Headroom,
    NodeKind,
    NodeLoad,
    PhaseLoad,
    RackView,
    SideLoad,
    SiteView,
    TopologyNode,
    UpsState,
)
from wattwise.model.graph import ChainLoads, SiteGraph


def utc(t_s: float) -> datetime:
    """Seconds since the epoch → timezone-aware UTC datetime (the API edge)."""
    return datetime.fromtimestamp(t_s, UTC)


def node_sides(graph: SiteGraph) -> dict[str, str]:
    """Feed side (A/B/C) of every node along its preferred path."""
    sides: dict[str, str] = {}
    for i, node in enumerate(graph.node_ids):
        parent = int(graph.node_parent[i])
        if parent < 0:
            sides[node] = next(f.side for f in graph.site.feeds if f.id == node)
        else:
            sides[node] = sides[graph.node_ids[parent]]
    return sides


def rack_pdus(graph: SiteGraph) -> dict[str, tuple[str, ...]]:
    """Rack id → PDUs that feed it (through server PSUs or its racklet's rectifiers)."""
    pdu_of_outlet = [graph.site.pdus[int(i)].id for i in graph.outlet_pdu]
    outlet_index = {o: i for i, o in enumerate(graph.outlet_ids)}
    racks_of_racklet: dict[str, list[str]] = {}
    for r in graph.site.racks:
        if r.racklet is not None:
            racks_of_racklet.setdefault(r.racklet, []).append(r.id)
    out: dict[str, set[str]] = {r.id: set() for r in graph.site.racks}
    for s in graph.site.servers:
        for p in s.psus:
            out.setdefault(s.rack, set()).add(pdu_of_outlet[outlet_index[p.input]])
    for rl in graph.site.racklets:
        pdus = {pdu_of_outlet[outlet_index[p.input]] for p in rl.power.psus}
        for rack in racks_of_racklet.get(rl.id, []):
            out[rack].update(pdus)
    return {r: tuple(sorted(p)) for r, p in out.items()}


def site_view(graph: SiteGraph) -> SiteView:
    """The topology of a site."""
    site = graph.site
    sides = node_sides(graph)
    ats_sources = {a.id: a.sources for a in site.ats}
    phases = {p.id: p.phases for p in site.pdus}
    nodes = tuple(
        TopologyNode(
            id=node,
            kind=_kind(kind),
            parent=graph.node_ids[int(parent)] if parent >= 0 else None,
            sources=tuple(ats_sources.get(node, ())),
            side=sides[node],
            capacity_w=float(cap),
            phases=phases.get(node),
        )
        for node, kind, parent, cap in zip(
            graph.node_ids, graph.node_kind, graph.node_parent, graph.node_capacity_w, strict=True
        )
    )
    servers_per_rack: dict[str, int] = {}
    for s in site.servers:
        servers_per_rack[s.rack] = servers_per_rack.get(s.rack, 0) + 1
    feeding = rack_pdus(graph)
    racks = tuple(
        RackView(
            id=r.id, hall=r.hall, pdus=feeding.get(r.id, ()), servers=servers_per_rack.get(r.id, 0), racklet=r.racklet
        )
        for r in site.racks
    )
    return SiteView(
        id=site.id,
        name=site.name or site.id,
        nodes=nodes,
        racks=racks,
        servers=len(site.servers),
        services=len(site.services),
        workloads=len(site.workloads),
    )


def _kind(kind: str) -> NodeKind:
    if kind == "feed":
        return "feed"
    if kind == "ats":
        return "ats"
    if kind == "ups":
        return "ups"
    return "pdu"


def _frac(load_w: float, capacity_w: float) -> float:
    return load_w / capacity_w if capacity_w > 0 else 0.0


def node_loads(loads: ChainLoads, sides: dict[str, str], indices: list[int] | None = None) -> tuple[NodeLoad, ...]:
    """NodeLoad views of the chosen node indices (default: all)."""
    idx = range(len(loads.node_ids)) if indices is None else indices
    out = []
    for i in idx:
        load_w, cap_w = float(loads.load_w[i]), float(loads.capacity_w[i])
        node = loads.node_ids[i]
        out.append(
            NodeLoad(
                id=node,
                kind=_kind(loads.node_kind[i]),
                side=sides.get(node),
                load_w=load_w,
                capacity_w=cap_w,
                headroom_w=cap_w - load_w,
                load_frac=_frac(load_w, cap_w),
            )
        )
    return tuple(out)


def headroom_view(
    graph: SiteGraph, loads: ChainLoads, sides: dict[str, str], t_s: float, source: str, max_pdus: int
) -> Headroom:
    """Headroom of every feed, ATS and UPS, plus the ``max_pdus`` busiest PDUs and their phases."""
    n_pdu = len(graph.site.pdus)
    pdu0 = len(loads.node_ids) - n_pdu
    pdu_frac = loads.load_w[pdu0:] / np.maximum(loads.capacity_w[pdu0:], 1e-9)
    phase_frac = loads.phase_load_w / np.maximum(loads.phase_capacity_w, 1e-9)
    busiest = np.maximum(pdu_frac, phase_frac.max(axis=1) if n_pdu else pdu_frac)
    order = np.argsort(-busiest, kind="stable")[:max_pdus]
    chosen = sorted(int(k) for k in order)
    nodes = node_loads(loads, sides, list(range(pdu0)) + [pdu0 + k for k in chosen])
    phases = []
    for k in chosen:
        pdu = graph.site.pdus[k]
        for ph in range(pdu.phases):
            load_w, cap_w = float(loads.phase_load_w[k, ph]), float(loads.phase_capacity_w[k, ph])
            phases.append(
                PhaseLoad(
                    pdu_id=pdu.id,
                    phase=ph + 1,
                    load_w=load_w,
                    capacity_w=cap_w,
                    headroom_w=cap_w - load_w,
                    load_frac=_frac(load_w, cap_w),
                )
            )
    side_views = _sides(graph, loads)
    total_w = sum(s.load_w for s in side_views)
    spread_w = max(s.load_w for s in side_views) - min(s.load_w for s in side_views) if side_views else 0.0
    return Headroom(
        t_s=t_s,
        at=utc(t_s),
        source=source,
        nodes=nodes,
        phases=tuple(phases),
        sides=side_views,
        imbalance_frac=spread_w / total_w if total_w > 0 else 0.0,
        pdus_total=n_pdu,
        pdus_shown=len(chosen),
    )


def _sides(graph: SiteGraph, loads: ChainLoads) -> tuple[SideLoad, ...]:
    acc: dict[str, list[float]] = {}
    for i, feed in enumerate(graph.site.feeds):
        entry = acc.setdefault(feed.side, [0.0, 0.0])
        entry[0] += float(loads.load_w[i])
        entry[1] += feed.capacity_w if feed.source == "grid" else 0.0
    for feed in graph.site.feeds:  # sides fed only by on-site sources still get a capacity
        if acc[feed.side][1] == 0.0:
            acc[feed.side][1] = feed.capacity_w
    return tuple(
        SideLoad(side=side, load_w=w, capacity_w=c, load_frac=_frac(w, c)) for side, (w, c) in sorted(acc.items())
    )


def ups_states(graph: SiteGraph, loads: ChainLoads) -> tuple[UpsState, ...]:
    """UPS views from the model alone: runtime estimated at full charge (no battery telemetry)."""
    out = []
    for u in graph.site.ups:
        load_w, cap_w = loads.of(u.id)
        usable_wh = u.battery_wh * u.state_of_health_frac
        out.append(
            UpsState(
                id=u.id,
                load_w=load_w,
                capacity_w=cap_w,
                on_battery=None,
                battery_charge_frac=None,
                battery_wh=u.battery_wh,
                state_of_health_frac=u.state_of_health_frac,
                runtime_s=usable_wh * 3600.0 / load_w if load_w > 0 else None,
                runtime_basis="estimate: rated battery × state of health ÷ load, full charge assumed (no telemetry)",
            )
        )
    return tuple(out)
