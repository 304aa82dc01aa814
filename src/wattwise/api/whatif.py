"""What-if: power-chain loads after losing some devices, for the ``StaticBackend``.

The sustained state is computed: an ATS whose preferred source is lost transfers to its
other source; everything below a dead node is unpowered (a UPS bridges on battery for a
while, reported separately, but is counted as lost once its battery is spent); each DC bus
re-shares its load among the PSUs that are still fed. The controller's real what-if also
runs its policies on this state; this module only answers the physics of the chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wattwise.model.graph import ChainLoads, FloatArray, SiteGraph


@dataclass(frozen=True)
class LossOutcome:
    """Sustained state after a loss.

    Attributes:
        loads: Chain loads after transfers and PSU re-sharing.
        dead_nodes: Upstream nodes left without power.
        ats_source: ATS id → source it ends on (only those that transferred).
        servers_unpowered: Servers whose every PSU lost its feed.
        ups_bridge_s: UPS id → seconds its battery bridges at today's load (input lost).
    """

    loads: ChainLoads
    dead_nodes: frozenset[str]
    ats_source: dict[str, str]
    servers_unpowered: int
    ups_bridge_s: dict[str, float]


def _dead_nodes(graph: SiteGraph, lost: frozenset[str]) -> tuple[frozenset[str], dict[str, str]]:
    """Nodes without power, top-down in node order (parents precede children)."""
    dead: set[str] = set()
    transfers: dict[str, str] = {}
    ats_by_id = {a.id: a for a in graph.site.ats}
    for i, node in enumerate(graph.node_ids):
        if node in lost:
            dead.add(node)
            continue
        ats = ats_by_id.get(node)
        if ats is not None:
            alive = [s for s in (ats.preferred_source, *ats.sources) if s not in dead]
            if not alive:
                dead.add(node)
            elif alive[0] != ats.preferred_source:
                transfers[node] = alive[0]
            continue
        parent = int(graph.node_parent[i])
        if parent >= 0 and graph.node_ids[parent] in dead:
            dead.add(node)
    return frozenset(dead), transfers


def lose(graph: SiteGraph, psu_input_w: FloatArray, lost: frozenset[str]) -> LossOutcome:
    """Sustained chain loads after losing ``lost`` (feeds, ATS, UPS or PDUs).

    Args:
        graph: The site graph.
        psu_input_w: PSU input power now (``graph.psu_ids`` order), W.
        lost: Ids of the devices lost.

    Returns:
        The loads after transfers and re-sharing, and what was left unpowered.

    Raises:
        KeyError: An id in ``lost`` is not a feed, ATS, UPS or PDU of the site.
    """
    unknown = sorted(lost - set(graph.node_ids))
    if unknown:
        raise KeyError(f"not a feed, ATS, UPS or PDU: {', '.join(unknown)}")
    dead, transfers = _dead_nodes(graph, lost)
    n_pdu = len(graph.site.pdus)
    pdu_alive = np.array([p.id not in dead for p in graph.site.pdus], dtype=bool)
    psu_alive = pdu_alive[graph.outlet_pdu[graph.psu_outlet]] if n_pdu else np.zeros(0, dtype=bool)
    n_bus = len(graph.bus_ids)
    bus_w = np.bincount(graph.psu_bus, weights=psu_input_w, minlength=n_bus)
    alive_per_bus = np.bincount(graph.psu_bus, weights=psu_alive.astype(np.float64), minlength=n_bus)
    share = bus_w[graph.psu_bus] / np.maximum(alive_per_bus[graph.psu_bus], 1.0)
    new_psu_w = np.where(psu_alive, share, 0.0)
    loads = graph.chain_loads(new_psu_w, ats_source=transfers)
    ok = graph.server_bus >= 0
    unpowered = int(np.count_nonzero(alive_per_bus[graph.server_bus[ok]] == 0))
    before = graph.chain_loads(psu_input_w)
    bridge: dict[str, float] = {}
    for u in graph.site.ups:
        if u.id in dead and u.id not in lost and u.input in dead:
            load_w, _ = before.of(u.id)
            bridge[u.id] = u.battery_wh * u.state_of_health_frac * 3600.0 / max(load_w, 1.0)
    return LossOutcome(loads, dead, transfers, unpowered, bridge)
