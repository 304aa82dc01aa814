"""Hysteresis for the allocation: a plan may lower a service at once, but raise it only with room.

The allocation re-plans from scratch on every reading. Without memory, a plan that sheds or
throttles a service to fit a limit is followed, a few seconds later, by one that gives the
power back (a shed service's draw is estimated from its CPU share, a throttled one's full
power is extrapolated from its throttled draw: both err), and then by another shed: flapping,
which the actuator's interlocks refuse but the operator still reads in the journal.

:func:`hold_raises` takes any valid plan (greedy or MILP) and the state's current levels and
only ever *lowers* services back to their present level, never below it, so every limit the
plan kept still holds. Two rules, both what an operator would do by hand:

1. **Nothing raised on battery.** A service shed or throttled now stays at its level while any
   UPS carrying its hosts runs on battery (or, when its hosts are all switched off, while any
   UPS does); it comes back when the UPS is back on a live source (utility or generator), in
   dependency order. Raising during the outage spends battery
   reserved for the critical tiers on the strength of a power estimate, and the next plan,
   with less energy left, takes it back.
2. **Raise with margin.** A service may be raised above its present level (throttle raised,
   or a restore once off battery) only while every row it loads keeps ``margin_frac`` of its
   capacity free after the raise. Least important tiers are held back first; holding back a
   more important service sheds every less important one (zero priority inversions) and a
   service held off takes its dependants with it.

Critical (forced) services are never held back: they are restored as soon as they fit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from wattwise.decide.allocation_greedy import shed_with_dependants
from wattwise.decide.allocation_problem import OFF, AllocationProblem

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

EPS = 1e-9


def touched_rows(p: AllocationProblem) -> sp.csc_matrix:
    """Boolean (n_row × n_service): rows a service loads, by its workloads or its hosts' idle."""
    n_host = len(p.host_server)
    pair = sp.csc_matrix((np.ones(len(p.pair_service)), (p.pair_host, p.pair_service)), shape=(n_host, p.n_service))
    dyn = (p.a_dyn != 0).astype(np.float64)
    idle = (p.a_idle != 0).astype(np.float64) @ pair
    out: sp.csc_matrix = ((dyn + idle) > 0).tocsc()
    return out


def state_level_idx(p: AllocationProblem, state_frac: FloatArray) -> IntArray:
    """Highest allowed level of each service not above its present level (``OFF`` if none)."""
    allowed = np.arange(p.levels_frac.shape[1])[None, :] < p.n_levels[:, None]
    fits = allowed & (p.levels_frac <= state_frac[:, None] + EPS) & (p.levels_frac > 0)
    first = np.argmax(fits, axis=1)
    out: IntArray = np.where(fits.any(axis=1) & (state_frac > 0), first, OFF).astype(np.int64)
    return out


def _hold(p: AllocationProblem, plan: IntArray, services: BoolArray, state_idx: IntArray) -> None:
    """Put ``services`` back to their present level (in place), keeping the rules."""
    idx = np.flatnonzero(services)
    keep = state_idx[idx]
    plan[idx] = np.where(keep == OFF, plan[idx], np.maximum(plan[idx], keep))
    shed_with_dependants(p, plan, idx[keep == OFF])
    for tier in range(4):  # a reduced tier sheds every less important one
        below = (p.rank == tier) & (plan != 0)
        if below.any():
            lower = np.flatnonzero((p.rank > tier) & (plan != OFF))
            shed_with_dependants(p, plan, lower)


def hold_raises(p: AllocationProblem, plan: IntArray, state_frac: FloatArray, margin_frac: float) -> IntArray:
    """The plan with unsafe raises held back (a copy; only ever lowers levels).

    Args:
        p: The problem the plan solves.
        plan: Level index per service (valid for ``p``).
        state_frac: Present level of each service (0 = shed).
        margin_frac: Share of each row's capacity that must stay free after a raise.

    Returns:
        A plan whose every service is at most at ``plan``'s level and at least at the
        present level where ``plan`` allowed it.
    """
    out = plan.copy()
    raised = (p.level_frac(out) > state_frac + EPS) & ~p.forced
    if not raised.any():
        return out
    touched = touched_rows(p)
    state_idx = state_level_idx(p, state_frac)
    energy = touched[p.n_power_rows :, :]
    on_battery = np.asarray(energy.sum(axis=0)).ravel() > 0
    # A service whose hosts are all dark (switched off when it was shed) loads no row, so it
    # looks free; while any UPS runs on battery, powering its hosts back would spend battery.
    on_battery |= p.dead & (energy.shape[0] > 0)
    raised_on_battery = raised & on_battery
    if raised_on_battery.any():
        _hold(p, out, raised_on_battery, state_idx)
    margin = margin_frac * np.where(np.isfinite(p.rhs), np.abs(p.rhs), 0.0)
    for _ in range(4):
        raised = (p.level_frac(out) > state_frac + EPS) & ~p.forced
        tight = np.flatnonzero(p.loads(out) > p.rhs - margin)
        if not raised.any() or len(tight) == 0:
            break
        bad = raised & (np.asarray(touched[tight, :].sum(axis=0)).ravel() > 0)
        if not bad.any():
            break
        _hold(p, out, bad & (p.rank == p.rank[bad].max()), state_idx)
    return out
