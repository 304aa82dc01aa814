"""The power-event allocation problem as arrays, shared by the MILP and the greedy solver.

**Service power.** A server's AC power ``P`` (the measured value, or the forecast's upper
bound when larger) is its idle power ``I`` plus dynamic power ``D = max(P - I, 0)``. ``D`` is
split among the workloads on the server whose service was on when ``P`` was read, in
proportion to ``cpu_frac``, and divided by their service's level at that time
(``workload_read_level_frac``; the present level when not given), giving each workload's
full-level dynamic power; a workload of a service that was shed is estimated at
``cpu_frac * (peak - idle)``.
A service at level ``l`` draws ``l`` × the sum of its workloads' full dynamic power. A
server's idle power is paid while *any* service on it is on; a switchable server (own PSUs)
whose services are all off is powered off and saves its idle power too. Servers with no
workload, and racklet-fed servers' idle power, are a fixed base load, except that in a
power event switchable servers with no workload are powered off (``spare_off``).

**Rows.** Power rows are the live chain's nodes and phases (capacity W). Each UPS on battery
adds an energy row: every service it carries needs the battery for its inherited tier's
runtime target (at least ``min_hold_s``, the re-plan period, so even a low tier that keeps
power pays for the time until the next plan); idle and base loads need it for the longest
target of what they carry, counted from the moment of the plan: a look-ahead reserve (the
critical tier always keeps its target's worth ahead, however long the outage has lasted; see
``docs/adr/0005-runtime-targets-as-look-ahead.md``). The energy row's capacity is the usable
energy above the low-battery reserve, less the energy the present draw takes for
``response_reserve_s`` (the battery drains at the pre-plan load until the plan's actions
take effect; without it, the plan made a second after an event's plan found the battery
that much lower and shed again).

**Rules.** Services whose inherited tier is critical are always on (any allowed level). A
dependant on ⇒ its dependencies on. Zero priority inversions: if any service of inherited
tier ``t`` is below full, every service of a less important inherited tier is off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from wattwise.decide.base import PowerState, SiteForecast
from wattwise.decide.chain import LiveChain, live_chain

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TIER_WEIGHT = np.array([1000.0, 100.0, 10.0, 1.0])
OFF = -1
TOL_W = 1e-6


@dataclass(frozen=True, eq=False)
class AllocationProblem:
    """Everything a solver needs, as arrays.

    Attributes:
        chain: The live chain.
        row_names: Power rows, then ``<ups>:energy_j`` rows.
        rhs: Capacity left per row once the base load is paid (W or J).
        a_dyn: CSC (n_row × n_service): row load per service at level 1.0.
        a_idle: CSC (n_row × n_host): row load of each host server's idle power.
        host_server: Server index of each host (a switchable server with workloads).
        pair_service: Service of each (service, host) pair.
        pair_host: Host of each pair.
        rank: Inherited tier rank per service.
        levels_frac: (n_service, n_level) allowed levels (padded with 0).
        n_levels: Allowed levels per service.
        forced: Services that must stay on (inherited critical).
        dep_src: Dependency edges (src depends on dst).
        dep_dst: See ``dep_src``.
        dead: Services with no powered server at all.
        n_power_rows: Number of power rows (the rest are energy rows).
        service_dyn_w: Full-level dynamic power per service (live workloads), W.
        spare_off: Switchable live servers with no workload that this problem powers off.
        spare_row: Row usage of those servers were they left on (W or J).
        current_off: Services shed in the state (restoring them is churn unless there is margin).
    """

    chain: LiveChain
    row_names: tuple[str, ...]
    rhs: FloatArray
    a_dyn: sp.csc_matrix
    a_idle: sp.csc_matrix
    host_server: IntArray
    pair_service: IntArray
    pair_host: IntArray
    rank: IntArray
    levels_frac: FloatArray
    n_levels: IntArray
    forced: BoolArray
    dep_src: IntArray
    dep_dst: IntArray
    dead: BoolArray
    n_power_rows: int
    service_dyn_w: FloatArray
    spare_off: IntArray
    spare_row: FloatArray
    current_off: BoolArray

    def with_spares_on(self) -> AllocationProblem:
        """The same problem with workload-free servers left on (their load back in the rows)."""
        return replace(
            self, rhs=self.rhs - self.spare_row, spare_off=self.spare_off[:0], spare_row=np.zeros_like(self.spare_row)
        )

    @property
    def n_service(self) -> int:
        """Number of services."""
        return len(self.rank)

    def level_frac(self, level_idx: IntArray) -> FloatArray:
        """Level fraction per service for a plan of level indices (``OFF`` → 0)."""
        safe = np.maximum(level_idx, 0)
        out: FloatArray = np.where(level_idx >= 0, self.levels_frac[np.arange(self.n_service), safe], 0.0)
        return out

    def host_on(self, level_idx: IntArray) -> FloatArray:
        """1.0 for hosts with any service on."""
        on = (level_idx[self.pair_service] >= 0).astype(np.float64)
        return np.bincount(self.pair_host, weights=on, minlength=len(self.host_server)).clip(0.0, 1.0)

    def loads(self, level_idx: IntArray) -> FloatArray:
        """Row usage of a plan (same units as ``rhs``)."""
        out: FloatArray = self.a_dyn @ self.level_frac(level_idx) + self.a_idle @ self.host_on(level_idx)
        return out

    def excess(self, level_idx: IntArray) -> FloatArray:
        """Usage above ``rhs`` per row (0 where within)."""
        return np.maximum(self.loads(level_idx) - self.rhs, 0.0)

    def value(self, level_idx: IntArray) -> float:
        """Objective: tier-weighted sum of service levels (higher is better)."""
        return float(TIER_WEIGHT[self.rank] @ self.level_frac(level_idx))

    def violations(self, level_idx: IntArray) -> list[str]:
        """Every rule a plan breaks (empty when the plan is valid and within limits)."""
        out: list[str] = []
        on = level_idx >= 0
        bad_dep = on[self.dep_src] & ~on[self.dep_dst]
        out += [
            f"dependency broken: service #{s} on without #{d}"
            for s, d in zip(self.dep_src[bad_dep].tolist(), self.dep_dst[bad_dep].tolist(), strict=True)
        ]
        out += [f"forced service #{s} is off" for s in np.flatnonzero(self.forced & ~on).tolist()]
        out += [f"priority inversion at tier {t}" for t in range(4) if inversion(self.rank, level_idx, t)]
        ex = self.excess(level_idx)
        out += [f"{self.row_names[r]} over by {ex[r]:.1f}" for r in np.flatnonzero(ex > TOL_W * 10).tolist()]
        return out


def inversion(rank: IntArray, level_idx: IntArray, tier: int) -> bool:
    """Whether some tier-``tier`` service is below full while a less important one is on."""
    below_full = (rank == tier) & (level_idx != 0)
    return bool(below_full.any() and ((rank > tier) & (level_idx >= 0)).any())


def _service_power(state: PowerState, forecast: SiteForecast) -> tuple[FloatArray, FloatArray]:
    """Per-workload full-level dynamic power and per-server power used for planning, W."""
    ix = state.index
    power = state.server_power_w
    if forecast.server_power_upper_w is not None:
        power = np.maximum(power, forecast.server_power_upper_w)
    assert state.service_level_frac is not None
    dyn = np.maximum(power - ix.server_idle_w, 0.0)
    # The levels the power was read at (a reading from before a shed still holds its draw).
    read = state.workload_read_level_frac
    svc_level = state.service_level_frac[ix.wl_service] if read is None else read
    wl_on = svc_level > 0
    w_on = np.where(wl_on, ix.wl_cpu_frac, 0.0)
    tot = np.bincount(ix.wl_server, weights=w_on, minlength=len(ix.server_ids))
    share = np.where(wl_on, w_on / np.maximum(tot[ix.wl_server], 1e-12), 0.0)
    full = share * dyn[ix.wl_server] / np.maximum(svc_level, 1e-3)
    est = ix.wl_cpu_frac * (ix.server_peak_w - ix.server_idle_w)[ix.wl_server]
    wl_dyn = np.where(wl_on, full, est)
    return wl_dyn, power


def build_problem(
    state: PowerState,
    forecast: SiteForecast,
    *,
    min_hold_s: float = 60.0,
    inverter_efficiency_frac: float = 0.95,
    spare_off: bool = False,
    response_reserve_s: float = 0.0,
) -> AllocationProblem:
    """Turn a state and a forecast into an :class:`AllocationProblem`.

    With ``spare_off``, switchable servers that run no workload are powered off (their
    power leaves the base load): what an operator does first in a power event. The result is
    cached on the (frozen) state for the same forecast object and parameters.
    """
    key = f"problem:{min_hold_s}:{inverter_efficiency_frac}:{response_reserve_s}"
    cached = state._cache.get(key)
    if isinstance(cached, tuple) and cached[0] is forecast:
        p: AllocationProblem = cached[1]
    else:
        p = _build(state, forecast, min_hold_s, inverter_efficiency_frac, response_reserve_s)
        state._cache[key] = (forecast, p)
    return p if spare_off else p.with_spares_on()


def _build(
    state: PowerState,
    forecast: SiteForecast,
    min_hold_s: float,
    inverter_efficiency_frac: float,
    response_reserve_s: float,
) -> AllocationProblem:
    ix = state.index
    chain = live_chain(state, inverter_efficiency_frac=inverter_efficiency_frac)
    n_srv, n_svc = len(ix.server_ids), len(ix.service_ids)
    wl_dyn, power = _service_power(state, forecast)
    wl_live = ~chain.server_dark[ix.wl_server]
    w_mat = sp.csc_matrix((wl_dyn * wl_live, (ix.wl_server, ix.wl_service)), shape=(n_srv, n_svc))
    hosted = np.bincount(ix.wl_server, minlength=n_srv) > 0
    is_host = hosted & ix.server_switchable & ~chain.server_dark
    host_server = np.flatnonzero(is_host)
    host_pos = np.full(n_srv, -1, dtype=np.int64)
    host_pos[host_server] = np.arange(len(host_server))
    base_w = np.where(hosted, np.where(is_host, 0.0, np.minimum(power, ix.server_idle_w)), power)
    spare = ~hosted & ix.server_switchable & ~chain.server_dark & (power > 0)
    base_w = np.where(chain.server_dark | spare, 0.0, base_w)
    s2r = chain.server_to_row
    a_dyn_p = (s2r @ w_mat).tocsc()
    a_idle_p = (s2r[:, host_server].multiply(ix.server_idle_w[host_server][None, :])).tocsc()
    base_row = s2r @ base_w
    spare_row = s2r @ np.where(spare, power, 0.0)
    pairs = np.unique(ix.wl_service[is_host[ix.wl_server]] * (n_srv + 1) + ix.wl_server[is_host[ix.wl_server]])
    pair_service, pair_server = pairs // (n_srv + 1), pairs % (n_srv + 1)
    rank = ix.service_eff_rank
    hold = np.maximum(ix.runtime_target_s, min_hold_s)
    svc_hold = hold[rank]
    host_hold = np.zeros(len(host_server))
    np.maximum.at(host_hold, host_pos[pair_server], svc_hold[pair_service])
    batt = np.flatnonzero(chain.ups_battery)
    urows = chain.ups_row[batt]
    level_now = state.service_level_frac
    assert level_now is not None
    e_dyn = a_dyn_p[urows, :].multiply(svc_hold[None, :])
    e_idle = a_idle_p[urows, :].multiply(host_hold[None, :])
    e_base = base_row[urows] * hold.max()
    e_spare = spare_row[urows] * hold.max()
    # The battery drains at the present draw until the plan's actions take effect.
    host_on = np.zeros(len(host_server))
    np.maximum.at(host_on, host_pos[pair_server], (level_now[pair_service] > 0).astype(np.float64))
    present_w = (a_dyn_p @ level_now + a_idle_p @ host_on + base_row + spare_row)[urows]
    a_dyn = sp.vstack([a_dyn_p, e_dyn]).tocsc()
    a_idle = sp.vstack([a_idle_p, e_idle]).tocsc()
    rhs = np.concatenate(
        [chain.capacity_w - base_row, chain.ups_energy_j[batt] - e_base - present_w * response_reserve_s]
    )
    names = chain.row_names + tuple(f"{ix.node_ids[int(u)]}:energy_j" for u in urows)
    n_live_wl = np.bincount(ix.wl_service, weights=wl_live.astype(float), minlength=n_svc)
    return AllocationProblem(
        chain=chain,
        row_names=names,
        rhs=rhs,
        a_dyn=a_dyn,
        a_idle=a_idle,
        host_server=host_server,
        pair_service=pair_service.astype(np.int64),
        pair_host=host_pos[pair_server],
        rank=rank,
        levels_frac=ix.service_levels_frac,
        n_levels=ix.service_n_levels,
        forced=rank == 0,
        dep_src=ix.dep_src,
        dep_dst=ix.dep_dst,
        dead=(n_live_wl == 0) & (np.bincount(ix.wl_service, minlength=n_svc) > 0),
        n_power_rows=len(chain.row_names),
        spare_off=np.flatnonzero(spare),
        service_dyn_w=np.bincount(ix.wl_service, weights=wl_dyn * wl_live, minlength=n_svc).astype(np.float64),
        spare_row=np.concatenate([spare_row, e_spare]),
        current_off=np.asarray(level_now <= 0, dtype=bool),
    )
