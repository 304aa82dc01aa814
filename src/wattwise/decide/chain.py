"""The live power chain of a state: which rows (limits) each server's power lands on.

A *row* is one capacity limit: every upstream node (feed, ATS, UPS, PDU) and every PDU
phase. :func:`live_chain` resolves, for one :class:`~wattwise.decide.base.PowerState`:

* where each ATS draws from (its active source, or the other one when the active source is
  down and the other is up: the ATS is about to transfer, so plan for it);
* which UPS run from battery (flagged by the UPS, or nothing upstream is live) — their load
  stops at the UPS and does not reach the ATS/feed above;
* which PSUs are live (up, and something above them delivers), and what share of its DC
  bus each live PSU carries (the state's shares renormalised over live PSUs, else equal);
* the sparse matrix ``server_to_row`` (n_row × n_server): the fraction of a server's AC
  power that flows through each row. A server with no live PSU is *dark*.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from wattwise.decide.base import PowerState
from wattwise.decide.index import KIND_ATS, KIND_UPS, SiteIndex

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, eq=False)
class LiveChain:
    """Rows, capacities and the server → row matrix of one state.

    Attributes:
        row_names: Node ids, then ``<pdu>:L<k>`` for each present phase.
        capacity_w: Capacity per row, W.
        server_to_row: CSR (n_row × n_server), fraction of server power per row.
        server_dark: Servers with no live PSU (unpowered whatever the plan).
        psu_live: PSUs that are up and fed.
        psu_share_frac: Share of its bus each PSU carries (0 for dead ones).
        ups_battery: UPS that run from battery in this plan.
        ups_energy_j: Usable battery energy above the low-battery reserve per UPS, J.
        ups_row: Row index of each UPS.
        node_live: Whether each node delivers power.
        psu_on_battery: PSUs fed through a UPS that runs from battery.
    """

    row_names: tuple[str, ...]
    capacity_w: FloatArray
    server_to_row: sp.csr_matrix
    server_dark: BoolArray
    psu_live: BoolArray
    psu_share_frac: FloatArray
    ups_battery: BoolArray
    ups_energy_j: FloatArray
    ups_row: IntArray
    node_live: BoolArray
    psu_on_battery: BoolArray


def _node_parents(ix: SiteIndex, state: PowerState) -> tuple[IntArray, BoolArray, BoolArray]:
    """Effective parents, live nodes and on-battery UPS (levels resolved top-down)."""
    assert state.feed_available is not None
    assert state.ats_source is not None
    assert state.ups_on_battery is not None
    assert state.ups_charge_frac is not None
    n = len(ix.node_ids)
    n_feed = int((ix.node_kind == 0).sum())
    parent = ix.node_parent.copy()
    live = np.zeros(n, dtype=bool)
    live[:n_feed] = state.feed_available
    ats_nodes = np.flatnonzero(ix.node_kind == KIND_ATS)
    if len(ats_nodes):
        src = state.ats_source.copy()
        other = np.where(ix.ats_sources[:, 0] == src, ix.ats_sources[:, 1], ix.ats_sources[:, 0])
        switch = ~live[src] & live[other]
        parent[ats_nodes] = np.where(switch, other, src)
        live[ats_nodes] = live[parent[ats_nodes]]
    ups_up = live[np.maximum(ix.node_parent[ix.ups_node], 0)] & (ix.node_parent[ix.ups_node] >= 0)
    ups_up = ups_up | (ix.node_parent[ix.ups_node] < 0)
    on_batt = state.ups_on_battery | ~ups_up
    live[ix.ups_node] = ~on_batt | (state.ups_charge_frac > 0.0)
    pdu_parent = parent[ix.pdu_node]
    live[ix.pdu_node] = live[np.maximum(pdu_parent, 0)] & (pdu_parent >= 0)
    return parent, live, on_batt


def live_chain(state: PowerState, *, inverter_efficiency_frac: float = 0.95) -> LiveChain:
    """Resolve the live chain of ``state`` (see the module docstring).

    Args:
        state: The power state.
        inverter_efficiency_frac: UPS inverter efficiency on battery (battery J per output J).

    Returns:
        The rows, capacities and server → row matrix.
    """
    key = f"chain:{inverter_efficiency_frac}"
    cached = state._cache.get(key)
    if isinstance(cached, LiveChain):
        return cached
    ix = state.index
    parent, live, on_batt = _node_parents(ix, state)
    assert state.psu_available is not None
    assert state.ups_charge_frac is not None
    n_node, n_pdu = len(ix.node_ids), len(ix.pdu_node)
    psu_live = state.psu_available & live[ix.pdu_node[ix.psu_pdu]] if len(ix.psu_ids) else np.zeros(0, bool)
    behind_batt = _behind_battery(ix, parent, on_batt)[ix.pdu_node[ix.psu_pdu]]
    share = _shares(ix, state, psu_live, psu_live & ~behind_batt)
    # Rows touched by each PSU: its phase, its PDU, then ancestors until a UPS on battery.
    ups_of_node = np.full(n_node, -1, dtype=np.int64)
    ups_of_node[ix.ups_node] = np.arange(len(ix.ups_node))
    rows, cols, vals = [n_node + ix.psu_pdu * 3 + ix.psu_phase], [ix.psu_bus], [share]
    cur = ix.pdu_node[ix.psu_pdu]
    going = psu_live.copy()
    for _ in range(6):
        rows.append(cur[going])
        cols.append(ix.psu_bus[going])
        vals.append(share[going])
        batt_stop = (ups_of_node[cur] >= 0) & on_batt[np.maximum(ups_of_node[cur], 0)]
        going = going & ~batt_stop & (parent[cur] >= 0)
        cur = np.where(going, parent[cur], cur)
        if not going.any():
            break
    n_row = n_node + 3 * n_pdu
    bus_to_row = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_row, ix.n_bus)
    )
    has_bus = ix.server_bus >= 0
    bus_live = np.bincount(ix.psu_bus, weights=psu_live.astype(float), minlength=ix.n_bus) > 0
    server_dark = ~has_bus | ~bus_live[np.maximum(ix.server_bus, 0)]
    pick = sp.csc_matrix(
        (np.ones(int(has_bus.sum())), (ix.server_bus[has_bus], np.flatnonzero(has_bus))),
        shape=(ix.n_bus, len(ix.server_ids)),
    )
    server_to_row = (bus_to_row @ pick).tocsr()
    names = ix.node_ids + tuple(f"{ix.node_ids[int(p)]}:L{k + 1}" for p in ix.pdu_node for k in range(3))
    cap = np.concatenate([ix.node_capacity_w, ix.phase_capacity_w.reshape(-1)])
    cap = np.where(cap > 0, cap, np.inf)
    ups_ix = np.arange(len(ix.ups_node))
    usable = np.maximum(state.ups_charge_frac - ix.ups_low_battery_frac, 0.0)
    energy = ix.ups_battery_wh * SECONDS_PER_HOUR * ix.ups_soh_frac * usable * inverter_efficiency_frac
    chain = LiveChain(
        names,
        cap,
        server_to_row,
        server_dark,
        psu_live,
        share,
        on_batt[ups_ix],
        energy,
        ix.ups_node.copy(),
        live,
        behind_batt,
    )
    state._cache[key] = chain
    return chain


def _behind_battery(ix: SiteIndex, parent: IntArray, on_batt: BoolArray) -> BoolArray:
    """Nodes fed through a UPS that runs from battery (levels are in node order)."""
    out = np.zeros(len(ix.node_ids), dtype=bool)
    out[ix.ups_node] = on_batt
    for kind in (KIND_ATS, KIND_UPS, 3):
        nodes = np.flatnonzero((ix.node_kind == kind) & (parent >= 0))
        out[nodes] |= out[parent[nodes]]
    return out


def _shares(ix: SiteIndex, state: PowerState, psu_live: BoolArray, psu_mains: BoolArray) -> FloatArray:
    """Share of its bus each live PSU carries: state shares renormalised, else equal.

    A bus with a live PSU on mains puts its whole load there: PSUs behind a UPS on battery
    carry nothing (with 2N wiring the other side picks the load up when that battery ends,
    and the load-sharing policy sets exactly these shares), so battery energy is kept.
    """
    mains_bus = np.bincount(ix.psu_bus, weights=psu_mains.astype(float), minlength=ix.n_bus) > 0
    psu_live = np.where(mains_bus[ix.psu_bus], psu_mains, psu_live)
    base = state.psu_share_frac if state.psu_share_frac is not None else np.ones(len(ix.psu_ids))
    w = np.where(psu_live, base, 0.0)
    tot = np.bincount(ix.psu_bus, weights=w, minlength=ix.n_bus)
    n_live = np.bincount(ix.psu_bus, weights=psu_live.astype(float), minlength=ix.n_bus)
    equal = np.where(psu_live, 1.0 / np.maximum(n_live[ix.psu_bus], 1.0), 0.0)
    return np.where(tot[ix.psu_bus] > 1e-12, w / np.maximum(tot[ix.psu_bus], 1e-12), equal)


def row_loads_w(chain: LiveChain, server_power_w: FloatArray) -> FloatArray:
    """Load of every row for given server powers, W."""
    out: FloatArray = chain.server_to_row @ server_power_w
    return out
