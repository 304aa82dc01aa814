"""Greedy solver for the allocation problem: tier by tier, throttle before shed.

Unlike the seed's pseudocode (a power budget compared against energy, no dependencies), it
works on every limit row at once, sheds a service only together with everything that
depends on it, and keeps zero priority inversions by construction: it touches an inherited
tier only once every less important tier is off.

Inside a tier the candidate moves are the services that load a violated row: first every
one-step throttle (step 1 for all, then step 2…), then sheds in reverse dependency order
(dependants first); within a group the move that frees most of the excess per unit of lost
value goes first. The shortest prefix of moves that covers every row's excess is applied
(cumulative sums, no per-move Python loop), then loads are recomputed exactly.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from wattwise.decide.allocation_problem import OFF, TIER_WEIGHT, TOL_W, AllocationProblem

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _dependants_csr(p: AllocationProblem) -> tuple[IntArray, IntArray]:
    """Direct dependants of each service as (indptr, indices)."""
    order = np.argsort(p.dep_dst, kind="stable")
    counts = np.bincount(p.dep_dst, minlength=p.n_service)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, p.dep_src[order].astype(np.int64)


def shed_with_dependants(p: AllocationProblem, level_idx: IntArray, services: IntArray) -> None:
    """Set ``services`` and everything that depends on them to OFF (in place)."""
    indptr, kids = _dependants_csr(p)
    todo = [int(s) for s in services]
    while todo:
        s = todo.pop()
        if level_idx[s] != OFF:
            level_idx[s] = OFF
            todo.extend(int(k) for k in kids[indptr[s] : indptr[s + 1]])


def _moves(
    p: AllocationProblem, level_idx: IntArray, members: IntArray, viol: IntArray, need: FloatArray
) -> tuple[IntArray, IntArray, FloatArray]:
    """Candidate moves (service, new level index or OFF) and their savings on violated rows."""
    sub = p.a_dyn[viol][:, members].toarray()  # (n_viol, n_members)
    cand = (sub > 0).any(axis=0) & (level_idx[members] != OFF)
    svc_list, new_list, save_list, ratio_list = [], [], [], []
    cur = level_idx[members]
    lev = p.levels_frac[members]
    last = p.n_levels[members] - 1
    rows = np.arange(len(members))
    weight = TIER_WEIGHT[p.rank[members]]
    for j in range(1, p.levels_frac.shape[1]):
        ok = cand & (cur < j) & (j <= last)
        if ok.any():
            d = lev[rows, j - 1] - lev[rows, j]
            save = sub[:, ok] * d[ok]
            svc_list.append(members[ok])
            new_list.append(np.full(int(ok.sum()), j))
            save_list.append(save.T)
            ratio_list.append(_gain(save, need) / (weight[ok] * d[ok]))
    shed = cand & ~p.forced[members]
    if shed.any():
        keep = lev[rows, np.maximum(cur, 0)]
        idle = _exclusive_idle(p, viol, members)
        save = sub[:, shed] * keep[shed] + idle[:, shed]
        svc_list.append(members[shed])
        new_list.append(np.full(int(shed.sum()), OFF))
        save_list.append(save.T)
        ratio = _gain(save, need) / (weight[shed] * np.maximum(keep[shed], 1e-9))
        ratio_list.append(np.where(p.current_off[members[shed]], np.inf, ratio))  # already shed: no churn
    if not svc_list:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, len(viol)))
    order = np.argsort(-np.concatenate(ratio_list), kind="stable")
    return (
        np.concatenate(svc_list)[order],
        np.concatenate(new_list).astype(np.int64)[order],
        np.concatenate(save_list)[order],
    )


def _gain(save: FloatArray, need: FloatArray) -> FloatArray:
    """Fraction of each violated row's excess a move frees, summed over rows (unit-free)."""
    out: FloatArray = np.minimum(save / np.maximum(need, TOL_W)[:, None], 1.0).sum(axis=0)
    return out


def _exclusive_idle(p: AllocationProblem, viol: IntArray, members: IntArray) -> FloatArray:
    """Idle load on violated rows freed by shedding each member (hosts it has alone)."""
    n_host = len(p.host_server)
    per_host = np.bincount(p.pair_host, minlength=n_host)
    excl = per_host[p.pair_host] == 1
    pos = np.full(p.n_service, -1)
    pos[members] = np.arange(len(members))
    m = excl & (pos[p.pair_service] >= 0)
    out = np.zeros((len(viol), len(members)))
    if m.any():
        idle = p.a_idle[viol][:, p.pair_host[m]].toarray()
        np.add.at(out.T, pos[p.pair_service[m]], idle.T)
    return out


def _apply_prefix(
    p: AllocationProblem, level_idx: IntArray, moves: tuple[IntArray, IntArray, FloatArray], need: FloatArray
) -> None:
    svc, new, save = moves
    covered = (np.cumsum(save, axis=0) >= need[None, :] - TOL_W).all(axis=1)
    n = int(np.argmax(covered)) + 1 if covered.any() else len(svc)
    thr = (new[:n] >= 0) & (level_idx[svc[:n]] != OFF)
    np.maximum.at(level_idx, svc[:n][thr], new[:n][thr])
    shed_with_dependants(p, level_idx, svc[:n][new[:n] == OFF])


def solve_greedy(p: AllocationProblem, dep_depth: IntArray, restore_margin_frac: float = 0.05) -> IntArray:
    """Greedy plan: level index per service (0 = full, OFF = shed).

    Args:
        p: The problem.
        dep_depth: 0 for services with no dependency, else 1 + max over dependencies
            (give-back raises dependencies before dependants).
        restore_margin_frac: Share of each row's capacity that must stay free after a service
            shed in the state is restored (hysteresis: no shed/restore flapping between plans).

    Returns:
        The plan. It obeys the rules (dependencies, forced, no inversions) always; it is
        within every limit whenever it could find such a plan (check ``p.excess``).
    """
    level_idx = np.zeros(p.n_service, dtype=np.int64)
    for tier in (3, 2, 1, 0):
        members = np.flatnonzero(p.rank == tier)
        for _ in range(len(members) + 1):
            ex = p.excess(level_idx)
            viol = np.flatnonzero(ex > TOL_W)
            if len(viol) == 0:
                return _give_back(p, level_idx, members, dep_depth, restore_margin_frac)
            moves = _moves(p, level_idx, members, viol, ex[viol])
            if len(moves[0]) == 0:
                break
            _apply_prefix(p, level_idx, moves, ex[viol])
        if tier > 0:
            shed_with_dependants(p, level_idx, members)
    return level_idx


def _give_back(
    p: AllocationProblem, level_idx: IntArray, members: IntArray, dep_depth: IntArray, margin_frac: float
) -> IntArray:
    """Raise reduced services of the last tier touched while every row keeps its slack."""
    reduced = members[level_idx[members] != 0]
    if len(reduced) == 0:
        return level_idx
    slack = p.rhs - p.loads(level_idx)
    margin = margin_frac * np.where(np.isfinite(p.rhs), np.abs(p.rhs), 0.0)
    indptr, rows, data = p.a_dyn.indptr, p.a_dyn.indices, p.a_dyn.data
    order = np.argsort(p.pair_service, kind="stable")
    pstart = np.searchsorted(p.pair_service[order], np.arange(p.n_service + 1))
    host_n_on = np.bincount(
        p.pair_host, weights=(level_idx[p.pair_service] != OFF).astype(float), minlength=len(p.host_server)
    )
    on = level_idx != OFF
    for s in reduced[np.lexsort((-TIER_WEIGHT[p.rank[reduced]], dep_depth[reduced]))].tolist():
        deps_ok = bool(on[p.dep_dst[p.dep_src == s]].all())
        if not deps_ok:
            continue
        col_r, col_v = rows[indptr[s] : indptr[s + 1]], data[indptr[s] : indptr[s + 1]]
        cur = p.levels_frac[s, level_idx[s]] if on[s] else 0.0
        hosts = p.pair_host[order[pstart[s] : pstart[s + 1]]]
        idle = p.a_idle[:, hosts[host_n_on[hosts] == 0]] if not on[s] else None
        for k in range(int(level_idx[s]) if on[s] else int(p.n_levels[s])):
            delta = np.zeros(len(slack))
            np.add.at(delta, col_r, col_v * (p.levels_frac[s, k] - cur))
            if idle is not None:
                delta += np.asarray(idle.sum(axis=1)).ravel()
            need = slack - margin if p.current_off[s] else slack
            if (delta <= need + TOL_W).all():
                slack -= delta
                if not on[s]:
                    host_n_on[hosts] += 1
                level_idx[s], on[s] = k, True
                break
    return level_idx
