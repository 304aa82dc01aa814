"""Indexed, vectorized queries over a site: power paths, downstream sets, load sums, headroom.

Upstream devices (feeds, ATS, UPS, PDUs) share one node index space; each has one parent
(an ATS's parent is its active source). Loads propagate bottom-up level by level with
``np.bincount``, so summing every feed, UPS, PDU and phase of a 100k-server site costs a few
array passes, never a Python loop per server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from wattwise.model.site import Psu, Service, Site

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

KIND_ORDER = ("feed", "ats", "ups", "pdu")


@dataclass(frozen=True)
class ChainLoads:
    """Loads of every upstream node and PDU phase, with their capacities.

    Attributes:
        node_ids: Ids of feeds, ATS, UPS and PDUs in node order.
        node_kind: Kind of each node.
        load_w: Load of each node, W.
        capacity_w: Continuous capacity of each node, W.
        phase_load_w: PDU phase loads, shape (n_pdu, 3), W.
        phase_capacity_w: PDU phase capacities, shape (n_pdu, 3), W (0 for absent phases).
    """

    node_ids: tuple[str, ...]
    node_kind: tuple[str, ...]
    load_w: FloatArray
    capacity_w: FloatArray
    phase_load_w: FloatArray
    phase_capacity_w: FloatArray

    @property
    def headroom_w(self) -> FloatArray:
        """Capacity minus load per node, W (negative when overloaded)."""
        return self.capacity_w - self.load_w

    @property
    def phase_headroom_w(self) -> FloatArray:
        """Derated breaker capacity minus load per PDU phase, shape (n_pdu, 3), W (0 for absent phases)."""
        return self.phase_capacity_w - self.phase_load_w

    @cached_property
    def _position(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.node_ids)}

    def of(self, node_id: str) -> tuple[float, float]:
        """(load_w, capacity_w) of one node.

        Raises:
            KeyError: ``node_id`` is not a feed, ATS, UPS or PDU of the site.
        """
        i = self._position[node_id]
        return float(self.load_w[i]), float(self.capacity_w[i])


@dataclass(frozen=True)
class SiteGraph:
    """Indexes built once from a :class:`Site`; every query after that is array work."""

    site: Site
    _cache: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    # ---- indexes -------------------------------------------------------------------------
    @cached_property
    def node_ids(self) -> tuple[str, ...]:
        """Feeds, ATS, UPS, PDUs in that order."""
        s = self.site
        return tuple([f.id for f in s.feeds] + [a.id for a in s.ats] + [u.id for u in s.ups] + [p.id for p in s.pdus])

    @cached_property
    def node_kind(self) -> tuple[str, ...]:
        """Kind of each node."""
        s = self.site
        counts = (len(s.feeds), len(s.ats), len(s.ups), len(s.pdus))
        return tuple(k for k, n in zip(KIND_ORDER, counts, strict=True) for _ in range(n))

    @cached_property
    def node_index(self) -> dict[str, int]:
        """Node id → index."""
        return {n: i for i, n in enumerate(self.node_ids)}

    @cached_property
    def server_ids(self) -> tuple[str, ...]:
        """Server ids in site order."""
        return tuple(s.id for s in self.site.servers)

    @cached_property
    def server_index(self) -> dict[str, int]:
        """Server id → index."""
        return {n: i for i, n in enumerate(self.server_ids)}

    @cached_property
    def outlet_ids(self) -> tuple[str, ...]:
        """All outlets, PDU by PDU."""
        return tuple(o.id for p in self.site.pdus for o in p.outlets)

    @cached_property
    def outlet_index(self) -> dict[str, int]:
        """Outlet id → index in ``outlet_ids``."""
        return {o: i for i, o in enumerate(self.outlet_ids)}

    @cached_property
    def racklet_psus(self) -> dict[str, tuple[Psu, ...]]:
        """Rack id → PSUs of the racklet power module feeding it (racklet racks only)."""
        psus = {r.id: r.power.psus for r in self.site.racklets}
        return {r.id: psus[r.racklet] for r in self.site.racks if r.racklet is not None and r.racklet in psus}

    @cached_property
    def outlet_pdu(self) -> IntArray:
        """PDU position (0-based among PDUs) of each outlet."""
        return np.array([i for i, p in enumerate(self.site.pdus) for _ in p.outlets], dtype=np.int64)

    @cached_property
    def outlet_phase(self) -> IntArray:
        """Phase (0-based) of each outlet."""
        return np.array([o.phase - 1 for p in self.site.pdus for o in p.outlets], dtype=np.int64)

    @cached_property
    def bus_ids(self) -> tuple[str, ...]:
        """DC buses: one per server with PSUs, one per racklet."""
        return tuple([s.id for s in self.site.servers if s.psus] + [r.id for r in self.site.racklets])

    @cached_property
    def psu_ids(self) -> tuple[str, ...]:
        """All PSUs: servers' then racklets'."""
        return tuple(
            [p.id for s in self.site.servers for p in s.psus] + [p.id for r in self.site.racklets for p in r.power.psus]
        )

    @cached_property
    def psu_bus(self) -> IntArray:
        """Bus index of each PSU."""
        owners = [s.psus for s in self.site.servers if s.psus] + [r.power.psus for r in self.site.racklets]
        return np.array([b for b, psus in enumerate(owners) for _ in psus], dtype=np.int64)

    @cached_property
    def psu_outlet(self) -> IntArray:
        """Outlet index feeding each PSU."""
        idx = self.outlet_index
        psus = [p for s in self.site.servers for p in s.psus] + [p for r in self.site.racklets for p in r.power.psus]
        return np.array([idx[p.input] for p in psus], dtype=np.int64)

    @cached_property
    def psu_rating_w(self) -> FloatArray:
        """Rating of each PSU, W."""
        psus = [p for s in self.site.servers for p in s.psus] + [p for r in self.site.racklets for p in r.power.psus]
        return np.array([p.rating_w for p in psus], dtype=np.float64)

    @cached_property
    def server_bus(self) -> IntArray:
        """Bus feeding each server (its own, or its rack's racklet), -1 when none."""
        # Bus order (see bus_ids): servers with PSUs in site order, then racklets.
        n_own = sum(1 for s in self.site.servers if s.psus)
        racklet_bus = {r.id: n_own + k for k, r in enumerate(self.site.racklets)}
        rack_bus = {r.id: racklet_bus.get(r.racklet, -1) for r in self.site.racks if r.racklet is not None}
        out: list[int] = []
        own = 0
        for s in self.site.servers:
            if s.psus:
                out.append(own)
                own += 1
            else:
                out.append(rack_bus.get(s.rack, -1))
        return np.array(out, dtype=np.int64)

    @cached_property
    def server_idle_w(self) -> FloatArray:
        """Idle power per server, W."""
        return np.array([s.idle_w for s in self.site.servers], dtype=np.float64)

    @cached_property
    def server_peak_w(self) -> FloatArray:
        """Peak power per server, W."""
        return np.array([s.peak_w for s in self.site.servers], dtype=np.float64)

    @cached_property
    def node_parent(self) -> IntArray:
        """Parent node of each node (an ATS's preferred source); -1 for feeds."""
        parent = np.full(len(self.node_ids), -1, dtype=np.int64)
        idx = self.node_index
        for a in self.site.ats:
            parent[idx[a.id]] = idx[a.preferred_source]
        for u in self.site.ups:
            parent[idx[u.id]] = idx[u.input]
        for p in self.site.pdus:
            parent[idx[p.id]] = idx[p.input]
        return parent

    @cached_property
    def node_capacity_w(self) -> FloatArray:
        """Continuous capacity per node, W (PDU: sum of derated phase capacities)."""
        s = self.site
        caps = [f.capacity_w for f in s.feeds] + [a.capacity_w for a in s.ats] + [u.capacity_w for u in s.ups]
        caps += [p.phase_capacity_w * p.phases for p in s.pdus]
        return np.array(caps, dtype=np.float64)

    @cached_property
    def phase_capacity_w(self) -> FloatArray:
        """Per-PDU, per-phase capacity, W; absent phases have 0."""
        out = np.zeros((len(self.site.pdus), 3), dtype=np.float64)
        for i, p in enumerate(self.site.pdus):
            out[i, : p.phases] = p.phase_capacity_w
        return out

    @cached_property
    def services(self) -> dict[str, Service]:
        """Service id → service."""
        return {s.id: s for s in self.site.services}

    # ---- queries -------------------------------------------------------------------------
    def chain_loads(
        self,
        psu_input_w: FloatArray,
        *,
        ats_source: Mapping[str, str] | None = None,
        ups_efficiency_frac: FloatArray | None = None,
    ) -> ChainLoads:
        """Sum PSU input power up the chain to every PDU phase, PDU, UPS, ATS and feed.

        Args:
            psu_input_w: AC input power of each PSU (``psu_ids`` order), W.
            ats_source: ATS id → active source feed id (default: preferred source).
            ups_efficiency_frac: Per-UPS efficiency (``site.ups`` order); input = output / eff.

        Returns:
            Loads and capacities of every node and phase.
        """
        outlet_w = np.bincount(self.psu_outlet, weights=psu_input_w, minlength=len(self.outlet_ids))
        n_pdu = len(self.site.pdus)
        flat: FloatArray = np.bincount(
            self.outlet_pdu * 3 + self.outlet_phase, weights=outlet_w, minlength=3 * n_pdu
        ).astype(np.float64, copy=False)
        phase_w: FloatArray = flat.reshape(n_pdu, 3)
        parent = self._parents(ats_source)
        load = np.zeros(len(self.node_ids), dtype=np.float64)
        n_feed, n_ats, n_ups = len(self.site.feeds), len(self.site.ats), len(self.site.ups)
        pdu0 = n_feed + n_ats + n_ups
        load[pdu0:] = phase_w.sum(axis=1)
        for lo, hi in ((pdu0, pdu0 + n_pdu), (n_feed + n_ats, pdu0), (n_feed, n_feed + n_ats)):
            child_w = load[lo:hi]
            if lo == n_feed + n_ats and ups_efficiency_frac is not None:
                child_w = child_w / np.maximum(ups_efficiency_frac, 1e-3)
            if hi > lo:
                load += np.bincount(parent[lo:hi], weights=child_w, minlength=len(load))
        return ChainLoads(self.node_ids, self.node_kind, load, self.node_capacity_w, phase_w, self.phase_capacity_w)

    def equal_share_psu_input_w(self, server_power_w: FloatArray, efficiency_frac: float = 1.0) -> FloatArray:
        """PSU input power when every bus shares its load equally among its PSUs, W."""
        bus_w = np.bincount(
            self.server_bus[self.server_bus >= 0],
            weights=server_power_w[self.server_bus >= 0],
            minlength=len(self.bus_ids),
        )
        n_per_bus = np.bincount(self.psu_bus, minlength=len(self.bus_ids)).astype(np.float64)
        per_psu = bus_w[self.psu_bus] / np.maximum(n_per_bus[self.psu_bus], 1.0)
        return per_psu / efficiency_frac

    def _parents(self, ats_source: Mapping[str, str] | None) -> IntArray:
        parent = self.node_parent
        if ats_source:
            parent = parent.copy()
            for ats_id, src in ats_source.items():
                parent[self.node_index[ats_id]] = self.node_index[src]
        return parent

    def upstream_ids(self, device_id: str, *, ats_source: Mapping[str, str] | None = None) -> tuple[str, ...]:
        """Device and every node above it, up to its feed.

        Args:
            device_id: A feed, ATS, UPS, PDU or outlet id.
            ats_source: ATS id → active source feed id (default: each ATS's preferred source).

        Raises:
            KeyError: ``device_id`` is not a node or outlet of the site.
        """
        chain: list[str] = []
        if device_id in self.node_index:
            i = self.node_index[device_id]
        else:
            pdu_pos = int(self.outlet_pdu[self.outlet_index[device_id]])
            chain.append(device_id)
            i = len(self.node_ids) - len(self.site.pdus) + pdu_pos
        parent = self._parents(ats_source)
        while i >= 0 and self.node_ids[i] not in chain:  # a loop only in an unvalidated site
            chain.append(self.node_ids[i])
            i = int(parent[i])
        return tuple(chain)

    def power_path(self, server_id: str, *, ats_source: Mapping[str, str] | None = None) -> tuple[tuple[str, ...], ...]:
        """Per PSU feeding the server: (psu, outlet, pdu, ups…, feed).

        A server without PSUs is fed by its rack's racklet, so its paths start at the
        racklet's rectifier PSUs.

        Args:
            server_id: The server.
            ats_source: ATS id → active source feed id (default: preferred sources).

        Raises:
            KeyError: ``server_id`` is not a server of the site.
        """
        server = self.site.servers[self.server_index[server_id]]
        psus = server.psus or self.racklet_psus.get(server.rack, ())
        return tuple((p.id, *self.upstream_ids(p.input, ats_source=ats_source)) for p in psus)

    @cached_property
    def _node_children(self) -> tuple[tuple[int, ...], ...]:
        """Children of each node, an ATS counted under both of its sources."""
        children: list[list[int]] = [[] for _ in self.node_ids]
        for i, p in enumerate(self.node_parent):
            if p >= 0 and self.node_kind[i] != "ats":
                children[int(p)].append(i)
        for a in self.site.ats:
            for src in set(a.sources):
                children[self.node_index[src]].append(self.node_index[a.id])
        return tuple(tuple(c) for c in children)

    def _nodes_below(self, node: int) -> npt.NDArray[np.bool_]:
        """Mask of nodes at or below ``node``: a walk of its subtree only, never all pairs."""
        mask = np.zeros(len(self.node_ids), dtype=bool)
        todo = [node]
        while todo:
            i = todo.pop()
            if not mask[i]:
                mask[i] = True
                todo.extend(self._node_children[i])
        return mask

    def _outlets_below(self, device_id: str) -> npt.NDArray[np.bool_]:
        if device_id in self.node_index:
            n_pdu = len(self.site.pdus)
            pdu_mask = self._nodes_below(self.node_index[device_id])[len(self.node_ids) - n_pdu :]
            return pdu_mask[self.outlet_pdu]
        mask = np.zeros(len(self.outlet_ids), dtype=bool)
        mask[self.outlet_index[device_id]] = True
        return mask

    @cached_property
    def _servers_below_outlet(self) -> list[IntArray]:
        """Per outlet, the servers it feeds (read-only arrays): an actuator asks per outlet-off."""
        bus_servers: list[list[int]] = [[] for _ in self.bus_ids]
        for j, b in enumerate(self.server_bus.tolist()):
            if b >= 0:
                bus_servers[b].append(j)
        per_outlet: list[set[int]] = [set() for _ in self.outlet_ids]
        for o, b in zip(self.psu_outlet.tolist(), self.psu_bus.tolist(), strict=True):
            per_outlet[o].update(bus_servers[b])
        out = []
        for servers in per_outlet:
            arr = np.array(sorted(servers), dtype=np.int64)
            arr.flags.writeable = False
            out.append(arr)
        return out

    def servers_below(self, device_id: str) -> IntArray:
        """Indices of servers with at least one PSU fed from below ``device_id``.

        Args:
            device_id: A feed, ATS, UPS, PDU or outlet id (any ATS source counts).

        Raises:
            KeyError: ``device_id`` is not a node or outlet of the site.
        """
        if device_id in self.outlet_index and device_id not in self.node_index:
            return self._servers_below_outlet[self.outlet_index[device_id]]
        outlet_mask = self._outlets_below(device_id)
        bus_mask = np.zeros(len(self.bus_ids), dtype=bool)
        bus_mask[self.psu_bus[outlet_mask[self.psu_outlet]]] = True
        ok = self.server_bus >= 0
        hit = np.zeros(len(self.server_ids), dtype=bool)
        hit[ok] = bus_mask[self.server_bus[ok]]
        return np.flatnonzero(hit).astype(np.int64)

    def downstream_ids(self, device_id: str) -> frozenset[str]:
        """Every node, outlet, PSU and server below a device (itself excluded).

        Raises:
            KeyError: ``device_id`` is not a node or outlet of the site.
        """
        out: set[str] = set()
        if device_id in self.node_index:
            below = self._nodes_below(self.node_index[device_id])
            out.update(self.node_ids[i] for i in np.flatnonzero(below))
        outlet_mask = self._outlets_below(device_id)
        out.update(self.outlet_ids[i] for i in np.flatnonzero(outlet_mask))
        out.update(self.psu_ids[i] for i in np.flatnonzero(outlet_mask[self.psu_outlet]))
        out.update(self.server_ids[i] for i in self.servers_below(device_id))
        out.discard(device_id)
        return frozenset(out)

    def dependency_closure(self, service_id: str) -> frozenset[str]:
        """The service and every service it depends on, transitively."""
        key = f"dep:{service_id}"
        cached = self._cache.get(key)
        if isinstance(cached, frozenset):
            return cached
        seen: set[str] = set()
        todo = [service_id]
        while todo:
            sid = todo.pop()
            if sid not in seen:
                seen.add(sid)
                todo.extend(self.services[sid].depends_on)
        result = frozenset(seen)
        self._cache[key] = result
        return result

    @cached_property
    def dependants(self) -> dict[str, frozenset[str]]:
        """Service id → every service that depends on it, transitively.

        Inverts the dependency closures: the work is the summed closure size, not a walk per
        service over everything downstream of it.
        """
        out: dict[str, set[str]] = {s.id: set() for s in self.site.services}
        for s in self.site.services:
            for dep in self.dependency_closure(s.id):
                if dep != s.id:
                    out[dep].add(s.id)
        return {sid: frozenset(users) for sid, users in out.items()}

    @cached_property
    def dependency_order(self) -> tuple[str, ...]:
        """Services topologically sorted: dependencies before dependants (restore order)."""
        order: list[str] = []
        done: set[str] = set()
        for s in sorted(self.site.services, key=lambda s: (s.restore_order, s.id)):
            stack = [(s.id, False)]
            while stack:
                sid, expanded = stack.pop()
                if sid in done:
                    continue
                if expanded:
                    done.add(sid)
                    order.append(sid)
                    continue
                stack.append((sid, True))
                stack.extend((d, False) for d in self.services[sid].depends_on if d not in done)
        return tuple(order)
