"""MILP formulation of the allocation problem, solved by HiGHS through ``scipy.optimize.milp``.

Variables: ``x[s, k]`` binary (service ``s`` runs at its ``k``-th allowed level), ``h[j]``
continuous in [0, 1] (host ``j`` powered; it settles at 0 or 1 because ``h[j] >= on[s]`` for
every service on it and powering a host only costs), ``f[t]`` binary for t = 0..2 (every
service of inherited tier ``t`` at full level).

Constraints: ``Σ_k x[s,k] <= 1`` (``== 1`` when forced); ``on[src] <= on[dst]`` per
dependency; ``f[t] <= x[s,0]`` for tier-``t`` services; ``on[s] <= f[rank(s)-1]`` and
``f[t] <= f[t-1]`` (no inversions); ``on[s] <= h[j]``; rows ``A_dyn·level + A_idle·h <= rhs``.
Objective: maximise the tier-weighted sum of levels (the greedy's objective).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from wattwise.decide.allocation_problem import OFF, TIER_WEIGHT, AllocationProblem

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MilpResult:
    """Outcome of one MILP solve.

    Attributes:
        level_idx: Plan (None when the solver found no feasible plan in time).
        status: HiGHS status code via SciPy (0 optimal, 1 limit reached, 2 infeasible...).
        message: Solver message.
        gap_frac: Relative MIP gap reported (0 when proven optimal).
    """

    level_idx: IntArray | None
    status: int
    message: str
    gap_frac: float


class _Rows:
    """Sparse constraint rows ``lo <= A x <= hi`` collected block by block."""

    def __init__(self, p: AllocationProblem) -> None:
        self.p = p
        n_s = p.n_service
        self.var_s = np.repeat(np.arange(n_s), p.n_levels)  # service of each x variable
        self.var_k = np.concatenate([np.arange(k) for k in p.n_levels]) if n_s else np.zeros(0, np.int64)
        self.first = np.concatenate([[0], np.cumsum(p.n_levels)]).astype(np.int64)  # x columns per service
        self.n_x = len(self.var_s)
        self.f0 = self.n_x + len(p.host_server)  # first tier flag
        self.n_var = self.f0 + 3
        self.n_row = 0
        self.parts: list[tuple[IntArray, IntArray, FloatArray]] = []
        self.lo: list[FloatArray] = []
        self.hi: list[FloatArray] = []

    def add(self, rows: IntArray, cols: IntArray, vals: FloatArray, n: int, lo: FloatArray, hi: FloatArray) -> None:
        """Append ``n`` rows (``rows`` are 0-based within the block)."""
        self.parts.append((self.n_row + rows, cols, vals))
        self.lo.append(lo)
        self.hi.append(hi)
        self.n_row += n

    def on_cols(self, services: IntArray) -> tuple[IntArray, IntArray]:
        """(block row, x column) covering every level variable of each listed service."""
        counts = self.p.n_levels[services]
        rows = np.repeat(np.arange(len(services)), counts)
        offs = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        return rows, np.repeat(self.first[services], counts) + offs

    def le_zero(self, n: int) -> tuple[FloatArray, FloatArray]:
        return np.full(n, -np.inf), np.zeros(n)

    def matrix(self) -> LinearConstraint:
        rr = np.concatenate([b[0] for b in self.parts])
        cc = np.concatenate([b[1] for b in self.parts])
        vv = np.concatenate([b[2] for b in self.parts])
        a = sp.csr_matrix((vv, (rr, cc)), shape=(self.n_row, self.n_var))
        return LinearConstraint(a, np.concatenate(self.lo), np.concatenate(self.hi))


def _service_rows(b: _Rows) -> None:
    """At most one level per service (exactly one when forced); dependencies; no inversions."""
    p = b.p
    n_s = p.n_service
    b.add(b.var_s, np.arange(b.n_x), np.ones(b.n_x), n_s, np.where(p.forced, 1.0, 0.0), np.ones(n_s))
    n_e = len(p.dep_src)
    if n_e:  # on[src] - on[dst] <= 0
        rs, cs = b.on_cols(p.dep_src)
        rd, cd = b.on_cols(p.dep_dst)
        rows = np.concatenate([rs, rd])
        vals = np.concatenate([np.ones(len(rs)), -np.ones(len(rd))])
        b.add(rows, np.concatenate([cs, cd]), vals, n_e, *b.le_zero(n_e))
    full = np.flatnonzero((b.var_k == 0) & (p.rank[b.var_s] < 3))  # f[t] - x[s,0] <= 0
    m = len(full)
    rows = np.concatenate([np.arange(m), np.arange(m)])
    cols = np.concatenate([b.f0 + p.rank[b.var_s[full]], full])
    b.add(rows, cols, np.concatenate([np.ones(m), -np.ones(m)]), m, *b.le_zero(m))
    lower = np.flatnonzero(p.rank >= 1)  # on[s] - f[rank-1] <= 0
    rs, cs = b.on_cols(lower)
    rows = np.concatenate([rs, np.arange(len(lower))])
    cols = np.concatenate([cs, b.f0 + p.rank[lower] - 1])
    vals = np.concatenate([np.ones(len(rs)), -np.ones(len(lower))])
    b.add(rows, cols, vals, len(lower), *b.le_zero(len(lower)))
    cols = b.f0 + np.array([1, 0, 2, 1])  # f[t] - f[t-1] <= 0
    b.add(np.array([0, 0, 1, 1]), cols, np.array([1.0, -1.0, 1.0, -1.0]), 2, *b.le_zero(2))


def _host_rows(b: _Rows) -> None:
    """on[s] - h[j] <= 0 for every (service, host) pair."""
    p = b.p
    n_pair = len(p.pair_service)
    if n_pair:
        rs, cs = b.on_cols(p.pair_service)
        rows = np.concatenate([rs, np.arange(n_pair)])
        cols = np.concatenate([cs, b.n_x + p.pair_host])
        vals = np.concatenate([np.ones(len(rs)), -np.ones(n_pair)])
        b.add(rows, cols, vals, n_pair, *b.le_zero(n_pair))


def _limit_rows(b: _Rows) -> None:
    """Capacity rows that any service or host loads (rows nothing can change are skipped)."""
    p = b.p
    used = np.flatnonzero((p.a_dyn.getnnz(axis=1) + p.a_idle.getnnz(axis=1)) > 0)
    lev = p.levels_frac[b.var_s, b.var_k]
    a_x = (p.a_dyn[used][:, b.var_s].multiply(lev[None, :])).tocoo()
    a_h = p.a_idle[used].tocoo()
    rows = np.concatenate([a_x.row, a_h.row]).astype(np.int64)
    cols = np.concatenate([a_x.col.astype(np.int64), b.n_x + a_h.col.astype(np.int64)])
    b.add(rows, cols, np.concatenate([a_x.data, a_h.data]), len(used), np.full(len(used), -np.inf), p.rhs[used])


def solve_milp(p: AllocationProblem, *, time_limit_s: float = 1.0, mip_rel_gap: float = 1e-4) -> MilpResult:
    """Solve ``p`` exactly (within ``mip_rel_gap``) or report why not."""
    fixed = (p.a_dyn.getnnz(axis=1) + p.a_idle.getnnz(axis=1)) == 0
    if (p.rhs[fixed] < -1e-9).any():
        return MilpResult(None, 2, "a limit is exceeded by load no plan can shed", float("inf"))
    b = _Rows(p)
    _service_rows(b)
    _host_rows(b)
    _limit_rows(b)
    c = np.zeros(b.n_var)
    c[: b.n_x] = -TIER_WEIGHT[p.rank[b.var_s]] * p.levels_frac[b.var_s, b.var_k]
    integrality = np.ones(b.n_var)
    integrality[b.n_x : b.f0] = 0  # host flags settle at 0/1 on their own
    res = milp(
        c,
        constraints=[b.matrix()],
        integrality=integrality,
        bounds=Bounds(np.zeros(b.n_var), np.ones(b.n_var)),
        options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap, "presolve": True},
    )
    if res.x is None:
        return MilpResult(None, int(res.status), str(res.message), float("inf"))
    x = res.x[: b.n_x] > 0.5
    level_idx = np.full(p.n_service, OFF, dtype=np.int64)
    level_idx[b.var_s[x]] = b.var_k[x]
    gap = float(getattr(res, "mip_gap", 0.0) or 0.0)
    return MilpResult(level_idx, int(res.status), str(res.message), gap)
