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

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from wattwise.decide.allocation_problem import OFF, TIER_WEIGHT, AllocationProblem

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


def _rows(*blocks: tuple[IntArray, IntArray, FloatArray]) -> tuple[IntArray, IntArray, FloatArray]:
    return (
        np.concatenate([b[0] for b in blocks]),
        np.concatenate([b[1] for b in blocks]),
        np.concatenate([b[2] for b in blocks]),
    )


def solve_milp(p: AllocationProblem, *, time_limit_s: float = 1.0, mip_rel_gap: float = 1e-4) -> MilpResult:
    """Solve ``p`` exactly (within ``mip_rel_gap``) or report why not."""
    n_s = p.n_service
    fixed = (p.a_dyn.getnnz(axis=1) + p.a_idle.getnnz(axis=1)) == 0
    if (p.rhs[fixed] < -1e-9).any():
        return MilpResult(None, 2, "a limit is exceeded by load no plan can shed", float("inf"))
    var_s = np.repeat(np.arange(n_s), p.n_levels)  # service of each x variable
    var_k = np.concatenate([np.arange(k) for k in p.n_levels]) if n_s else np.zeros(0, np.int64)
    n_x, n_h = len(var_s), len(p.host_server)
    f0 = n_x + n_h
    n_var = f0 + 3
    lev = p.levels_frac[var_s, var_k]
    c = np.zeros(n_var)
    c[:n_x] = -TIER_WEIGHT[p.rank[var_s]] * lev
    cons: list[LinearConstraint] = []
    r = 0
    blocks = []
    # one level at most per service
    blocks.append((var_s, np.arange(n_x), np.ones(n_x)))
    lo, hi = [np.where(p.forced, 1.0, 0.0)], [np.ones(n_s)]
    r += n_s
    # dependencies: on[src] - on[dst] <= 0
    e = np.arange(len(p.dep_src))
    pos_src = np.isin(var_s, p.dep_src)
    if len(e):
        first = np.concatenate([[0], np.cumsum(p.n_levels)])
        src_cols = [np.arange(first[s], first[s + 1]) for s in p.dep_src]
        dst_cols = [np.arange(first[d], first[d + 1]) for d in p.dep_dst]
        rs = np.concatenate([np.full(len(cs), r + i) for i, cs in enumerate(src_cols)])
        rd = np.concatenate([np.full(len(cs), r + i) for i, cs in enumerate(dst_cols)])
        blocks.append((rs, np.concatenate(src_cols), np.ones(len(rs))))
        blocks.append((rd, np.concatenate(dst_cols), -np.ones(len(rd))))
        lo.append(np.full(len(e), -np.inf))
        hi.append(np.zeros(len(e)))
        r += len(e)
    del pos_src
    # f[t] <= x[s,0] for s in tier t (t < 3)
    full = np.flatnonzero((var_k == 0) & (p.rank[var_s] < 3))
    m = len(full)
    blocks.append((r + np.arange(m), f0 + p.rank[var_s[full]], np.ones(m)))
    blocks.append((r + np.arange(m), full, -np.ones(m)))
    lo.append(np.full(m, -np.inf))
    hi.append(np.zeros(m))
    r += m
    # on[s] <= f[rank-1] for rank >= 1
    lower = np.flatnonzero(p.rank[var_s] >= 1)
    rows_s = np.unique(var_s[lower], return_inverse=True)
    svc_rows, inv = rows_s
    blocks.append((r + inv, lower, np.ones(len(lower))))
    blocks.append((r + np.arange(len(svc_rows)), f0 + p.rank[svc_rows] - 1, -np.ones(len(svc_rows))))
    lo.append(np.full(len(svc_rows), -np.inf))
    hi.append(np.zeros(len(svc_rows)))
    r += len(svc_rows)
    # f[t] <= f[t-1]
    blocks.append((r + np.array([0, 0, 1, 1]), f0 + np.array([1, 0, 2, 1]), np.array([1.0, -1.0, 1.0, -1.0])))
    lo.append(np.full(2, -np.inf))
    hi.append(np.zeros(2))
    r += 2
    r = _host_rows(p, blocks, lo, hi, r, var_s, n_x)
    r = _limit_rows(p, blocks, lo, hi, r, var_s, lev, n_x)
    rr, cc, vv = _rows(*blocks)
    a = sp.csr_matrix((vv, (rr, cc)), shape=(r, n_var))
    cons.append(LinearConstraint(a, np.concatenate(lo), np.concatenate(hi)))
    integrality = np.ones(n_var)
    integrality[n_x:f0] = 0
    res = milp(
        c,
        constraints=cons,
        integrality=integrality,
        bounds=Bounds(np.zeros(n_var), np.ones(n_var)),
        options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap, "presolve": True},
    )
    if res.x is None:
        return MilpResult(None, int(res.status), str(res.message), float("inf"))
    x = res.x[:n_x] > 0.5
    level_idx = np.full(n_s, OFF, dtype=np.int64)
    level_idx[var_s[x]] = var_k[x]
    gap = float(getattr(res, "mip_gap", 0.0) or 0.0)
    return MilpResult(level_idx, int(res.status), str(res.message), gap)


def _host_rows(
    p: AllocationProblem,
    blocks: list[tuple[IntArray, IntArray, FloatArray]],
    lo: list[FloatArray],
    hi: list[FloatArray],
    r: int,
    var_s: IntArray,
    n_x: int,
) -> int:
    """on[s] - h[j] <= 0 for every (service, host) pair."""
    n_pair = len(p.pair_service)
    if n_pair == 0:
        return r
    first = np.concatenate([[0], np.cumsum(p.n_levels)])
    counts = p.n_levels[p.pair_service]
    pair_rows = np.repeat(np.arange(n_pair), counts)
    starts = np.repeat(first[p.pair_service], counts)
    offs = np.arange(len(pair_rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    blocks.append((r + pair_rows, starts + offs, np.ones(len(pair_rows))))
    blocks.append((r + np.arange(n_pair), n_x + p.pair_host, -np.ones(n_pair)))
    lo.append(np.full(n_pair, -np.inf))
    hi.append(np.zeros(n_pair))
    return r + n_pair


def _limit_rows(
    p: AllocationProblem,
    blocks: list[tuple[IntArray, IntArray, FloatArray]],
    lo: list[FloatArray],
    hi: list[FloatArray],
    r: int,
    var_s: IntArray,
    lev: FloatArray,
    n_x: int,
) -> int:
    """Capacity rows that any service or host loads (rows nothing can change are skipped)."""
    used = np.flatnonzero((p.a_dyn.getnnz(axis=1) + p.a_idle.getnnz(axis=1)) > 0)
    a_x = (p.a_dyn[used][:, var_s].multiply(lev[None, :])).tocoo()
    a_h = p.a_idle[used].tocoo()
    blocks.append((r + a_x.row.astype(np.int64), a_x.col.astype(np.int64), a_x.data))
    blocks.append((r + a_h.row.astype(np.int64), n_x + a_h.col.astype(np.int64), a_h.data))
    lo.append(np.full(len(used), -np.inf))
    hi.append(p.rhs[used])
    return r + len(used)
