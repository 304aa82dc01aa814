"""Power-event allocation (seed 002): keep critical services and their dependencies up.

On utility loss, an ATS transfer, a UPS on battery or an alarm (and on every reading after,
since the policies are stateless and re-plan from the state they are given), choose per
service: full, a throttle level, or off, within every breaker, phase, PDU, UPS and feed
limit and within each on-battery UPS's energy for its tiers' runtime targets (see
:mod:`wattwise.decide.allocation_problem` for the exact model).

The plan is turned into ordered actions: sheds in reverse dependency order (dependants first),
one layer per dependency level and ``Action.sequence`` (the actuator sends a layer as soon as
the one before it is acknowledged; inside a layer, least important tier first); throttles once
every less important tier is shed; then outlets of servers left with nothing to run switched
off; when power allows again, outlets back on, then restores in dependency order (dependencies
first), batched so each step's inrush stays under ``inrush_step_w``, one step per
``restore_stagger_s`` (``Action.not_before_s``).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from wattwise.decide.allocation_greedy import solve_greedy
from wattwise.decide.allocation_hold import hold_raises
from wattwise.decide.allocation_milp import solve_milp
from wattwise.decide.allocation_problem import OFF, AllocationProblem, build_problem
from wattwise.decide.base import PowerState, SiteForecast
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

MAX_REASONS = 20
IDLE_MARGIN_FRAC = 1.1
"""A host drawing up to this × its idle power runs nothing (readings are noisy)."""


class GreedyAllocationPolicy:
    """Tier-by-tier greedy allocation (throttle before shed, dependants shed with their deps).

    Args:
        min_hold_s: Shortest battery time any kept service is charged for (re-plan period), s.
        inverter_efficiency_frac: UPS inverter efficiency on battery.
        restore_stagger_s: Delay between restore steps, s.
        inrush_step_w: Most power restored in one step, W.
        restore_margin_frac: Free share of every limit a row must keep after a service is
            raised above its present level (restored or throttled up); hysteresis against
            shed/restore and throttle flapping (:mod:`wattwise.decide.allocation_hold`, which
            also keeps shed services shed while their UPS is on battery).
        response_reserve_s: Battery energy kept for the present draw during this long, s: the
            time the plan's actions take to cut the load (see
            :mod:`wattwise.decide.allocation_problem`). Re-plans during an outage shed no more
            as long as the actions took less than this.

    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> from wattwise.decide.index import SiteIndex
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=40, servers_per_rack=10, services=8, seed=3)))
    >>> outage = PowerState(index=ix, server_power_w=ix.server_peak_w, feed_available=[False] * 4,
    ...                     ups_charge_frac=[0.6] * 2)
    >>> d = GreedyAllocationPolicy().decide(outage, SiteForecast())
    >>> d.status.value, [a.target_id for a in d.actions if a.kind.value == "service_shed"]
    ('ok', ['svc-0006', 'svc-0007', 'svc-0004', 'svc-0005', 'svc-0002', 'svc-0003', 'svc-0001'])
    >>> back = outage.with_(feed_available=None, service_level_frac=[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    >>> d = GreedyAllocationPolicy().decide(back, SiteForecast())
    >>> [(a.target_id, a.not_before_s) for a in d.actions if a.kind.value == "service_restore"]
    [('svc-0003', 0.0), ('svc-0004', 5.0), ('svc-0005', 10.0), ('svc-0007', 15.0), ('svc-0006', 20.0)]
    """

    name = "greedy_allocation"

    def __init__(
        self,
        min_hold_s: float = 60.0,
        inverter_efficiency_frac: float = 0.95,
        restore_stagger_s: float = 5.0,
        inrush_step_w: float = 20_000.0,
        restore_margin_frac: float = 0.05,
        response_reserve_s: float = 15.0,
    ) -> None:
        self.min_hold_s = min_hold_s
        self.response_reserve_s = response_reserve_s
        self.restore_margin_frac = restore_margin_frac
        self.inverter_efficiency_frac = inverter_efficiency_frac
        self.restore_stagger_s = restore_stagger_s
        self.inrush_step_w = inrush_step_w

    def problem(self, state: PowerState, forecast: SiteForecast, *, spare_off: bool = True) -> AllocationProblem:
        """The allocation problem of a state (exposed for tests and benchmarks)."""
        return build_problem(
            state,
            forecast,
            min_hold_s=self.min_hold_s,
            inverter_efficiency_frac=self.inverter_efficiency_frac,
            spare_off=spare_off,
            response_reserve_s=self.response_reserve_s,
        )

    def plan(self, problem: AllocationProblem, state: PowerState) -> tuple[IntArray, list[str]]:
        """Level index per service and solver notes."""
        return solve_greedy(problem, state.index.service_dep_depth, self.restore_margin_frac), []

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        """Plan the allocation for ``state`` and return it as ordered actions."""
        p = self.problem(state, forecast, spare_off=True)
        full = np.zeros(p.n_service, dtype=np.int64)
        p_on = p.with_spares_on()
        assert state.service_level_frac is not None
        now = state.service_level_frac
        if not p_on.violations(full):
            return to_decision(self, state, p_on, hold_raises(p_on, full, now, self.restore_margin_frac), [])
        level_idx, notes = (full, []) if not p.violations(full) else self.plan(p, state)
        return to_decision(self, state, p, hold_raises(p, level_idx, now, self.restore_margin_frac), notes)


class MilpAllocationPolicy(GreedyAllocationPolicy):
    """Optimal allocation by MILP (HiGHS), with the greedy plan as fallback and floor.

    The greedy plan is computed first (it costs little); the MILP result replaces it when the
    solver returns a valid plan at least as good. When HiGHS hits ``time_limit_s`` with no
    better plan, or finds none, the greedy plan is used and the reason says so. Problems with
    more than ``max_milp_services`` services go straight to the greedy plan: at 2 000
    services (a 10k-server site) a decision with the MILP took ~1 s (p50, 0.5 s solver budget)
    and HiGHS ran out of that budget in 17 of 20 benchmark states, while the greedy plan was
    within 0.12 % of the optimum (``bench/reports/decide.md``): the attempt only delays the plan.

    Args:
        time_limit_s: Solver time budget, s (HiGHS's own timer; the only clock involved).
        mip_rel_gap: Relative optimality gap at which HiGHS may stop.
        max_milp_services: Largest problem (services) given to the MILP solver.
        min_hold_s: See :class:`GreedyAllocationPolicy`.
        inverter_efficiency_frac: See :class:`GreedyAllocationPolicy`.
        restore_stagger_s: See :class:`GreedyAllocationPolicy`.
        inrush_step_w: See :class:`GreedyAllocationPolicy`.
        restore_margin_frac: See :class:`GreedyAllocationPolicy`.
        response_reserve_s: See :class:`GreedyAllocationPolicy`.

    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> from wattwise.decide.index import SiteIndex
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=40, servers_per_rack=10, services=8, seed=3)))
    >>> outage = PowerState(index=ix, server_power_w=ix.server_peak_w, feed_available=[False] * 4,
    ...                     ups_charge_frac=[0.6] * 2)
    >>> d = MilpAllocationPolicy().decide(outage, SiteForecast())
    >>> d.status.value, len([a for a in d.actions if a.kind.value == "service_shed"])
    ('ok', 7)
    """

    name = "milp_allocation"

    def __init__(
        self,
        time_limit_s: float = 0.5,
        mip_rel_gap: float = 1e-4,
        min_hold_s: float = 60.0,
        inverter_efficiency_frac: float = 0.95,
        restore_stagger_s: float = 5.0,
        inrush_step_w: float = 20_000.0,
        restore_margin_frac: float = 0.05,
        max_milp_services: int = 1000,
        response_reserve_s: float = 15.0,
    ) -> None:
        super().__init__(
            min_hold_s,
            inverter_efficiency_frac,
            restore_stagger_s,
            inrush_step_w,
            restore_margin_frac,
            response_reserve_s,
        )
        self.time_limit_s = time_limit_s
        self.mip_rel_gap = mip_rel_gap
        self.max_milp_services = max_milp_services

    def plan(self, problem: AllocationProblem, state: PowerState) -> tuple[IntArray, list[str]]:
        """MILP plan, or the greedy one when the MILP has nothing better in time."""
        greedy, _ = super().plan(problem, state)
        if problem.n_service > self.max_milp_services:
            return greedy, [f"greedy plan: {problem.n_service} services exceed the MILP size limit"]
        res = solve_milp(problem, time_limit_s=self.time_limit_s, mip_rel_gap=self.mip_rel_gap)
        if res.level_idx is None:
            logger.debug("MILP gave no plan (%s); greedy fallback", res.message.strip())
            return greedy, [f"MILP gave no plan ({res.message.strip()}); greedy fallback used"]
        if problem.violations(res.level_idx) or problem.value(res.level_idx) < problem.value(greedy) - 1e-9:
            return greedy, [f"MILP plan not better than greedy (status {res.status}); greedy fallback used"]
        return res.level_idx, [] if res.status == 0 else [f"MILP stopped early: {res.message.strip()}"]


def to_decision(
    policy: GreedyAllocationPolicy, state: PowerState, p: AllocationProblem, level_idx: IntArray, notes: list[str]
) -> Decision:
    """Turn a plan into ordered actions, status, reasons and the predicted effect."""
    ix = state.index
    assert state.service_level_frac is not None
    new = p.level_frac(level_idx)
    cur = state.service_level_frac
    actions = _shed_actions(policy, state, p, new, cur) + _restore_actions(policy, state, p, new, cur)
    last_s = max((a.not_before_s for a in actions), default=state.t_s)
    actions += _spare_on(state, p, last_s + policy.restore_stagger_s)
    actions += _redundancy_on(state, p, last_s)
    problems = p.violations(level_idx)
    dead = np.flatnonzero(p.dead & p.forced)
    problems += [f"critical service {ix.service_ids[int(s)]} has no powered server" for s in dead]
    status = DecisionStatus.INFEASIBLE if problems else DecisionStatus.OK
    reasons = [f"{int((new == 0).sum())} shed, {int(((new > 0) & (new < 1)).sum())} throttled of {p.n_service}"]
    if problems:
        reasons = ["no plan meets every rule; least-bad plan returned", *problems[:MAX_REASONS], *reasons]
    if status is DecisionStatus.OK and not actions:
        return Decision(
            policy_name=policy.name,
            status=DecisionStatus.SKIPPED,
            reasons=("all services at planned level",),
            t_s=state.t_s,
        )
    return Decision(
        policy_name=policy.name,
        status=status,
        actions=tuple(actions),
        reasons=tuple(notes + reasons),
        predicted_effect=_effect(p, level_idx),
        t_s=state.t_s,
    )


def _effect(p: AllocationProblem, level_idx: IntArray) -> dict[str, float]:
    loads = p.loads(level_idx)
    out = {"plan.value": p.value(level_idx)}
    rows = p.chain.ups_row
    for r in rows.tolist():
        out[f"{p.row_names[r]}.load_w"] = float(loads[r] + (p.chain.capacity_w[r] - p.rhs[r]))
    return out


def _shed_actions(
    policy: GreedyAllocationPolicy, state: PowerState, p: AllocationProblem, new: FloatArray, cur: FloatArray
) -> list[Action]:
    ix = state.index
    out: list[Action] = []
    t0 = state.t_s
    shed = np.flatnonzero((new == 0) & (cur > 0))
    # One layer per dependency level, dependants before their dependencies: services of one
    # level never depend on each other, so each layer goes out at once, whatever their tiers
    # (a layer per tier and level took a round trip each, a dozen in a large event, and bought
    # nothing: a failed shed holds back only what depended on it). Inside a layer the least
    # important tier is handed over first.
    order = shed[np.lexsort((-p.rank[shed], ix.service_dep_level[shed]))]
    level = ix.service_dep_level[order]
    steps = np.concatenate([[0], np.cumsum(np.diff(level) != 0)]) if len(order) else order
    for s, layer in zip(order.tolist(), steps.tolist(), strict=True):
        out.append(
            Action(
                kind=ActionKind.SERVICE_SHED,
                target_id=ix.service_ids[s],
                value=0.0,
                previous_value=float(cur[s]),
                reason=f"power event: shed tier-{int(p.rank[s])} service (dependants first)",
                not_before_s=t0,
                sequence=int(layer),
            )
        )
    thr = np.flatnonzero((new > 0) & (cur > 0) & (np.abs(new - cur) > 1e-9))

    def after_lower_tiers(s: int) -> int:
        """A service is throttled down only once every less important tier is shed."""
        if new[s] > cur[s]:
            return 0
        later = steps[p.rank[order] > p.rank[s]]
        return int(later.max()) + 1 if len(later) else 0

    out += [
        Action(
            kind=ActionKind.THROTTLE,
            target_id=ix.service_ids[s],
            value=float(new[s]),
            previous_value=float(cur[s]),
            reason="power event: throttle to fit budget",
            not_before_s=t0,
            sequence=after_lower_tiers(s),
        )
        for s in thr.tolist()
    ]
    last = int(steps[-1]) + 1 if len(order) else 0
    was_on = p.host_on(np.where(cur > 0, 0, OFF).astype(np.int64))
    # A host goes off when its last service is shed now, or when it was left with nothing to
    # run earlier and still draws its idle power: an outlet-off the actuator held (until the
    # host's services were confirmed shed) is planned again rather than forgotten. A host
    # drawing clearly more than idle runs something the plan does not know of (a workload
    # migrating in), so it is not switched off on the plan's word.
    host_w = state.server_power_w[p.host_server]
    still_drawing = (host_w > 1.0) & (host_w <= IDLE_MARGIN_FRAC * ix.server_idle_w[p.host_server])
    off = p.host_server[(p.host_on(np.where(new > 0, 0, OFF).astype(np.int64)) == 0) & ((was_on > 0) | still_drawing)]
    out += [
        Action(
            kind=ActionKind.OUTLET_OFF,
            target_id=o,
            reason=f"server {ix.server_ids[j]} has nothing left to run",
            not_before_s=t0,
            sequence=last,
        )
        for j, o in _outlets(state, off)
    ]
    return out


def _spare_on(state: PowerState, p: AllocationProblem, at_s: float) -> list[Action]:
    """Power back the idle (workload-free) servers switched off during an event, last."""
    if len(p.spare_off):
        return []
    ix = state.index
    hosted = np.bincount(ix.wl_server, minlength=len(ix.server_ids)) > 0
    off = np.flatnonzero(~hosted & ix.server_switchable & ~p.chain.server_dark & (state.server_power_w <= 0))
    return [
        Action(kind=ActionKind.OUTLET_ON, target_id=o, reason="power back: spare server on", not_before_s=at_s)
        for _, o in _outlets(state, off)
    ]


def _redundancy_on(state: PowerState, p: AllocationProblem, at_s: float) -> list[Action]:
    """Once power is back, switch on an outlet left off under a server that runs on its other PSU.

    A response switches both outlets of an emptied host off; when one of them went off and the
    other did not (refused, failed, or the host took work again), the host runs on one PSU and
    no restore would ever look at it again, since it draws power. Only with every feed up, no
    UPS on battery and power to spare (the plan keeps spare servers on).
    """
    feeds, on_battery, outlet_on = state.feed_available, state.ups_on_battery, state.psu_outlet_on
    assert feeds is not None  # every array below is filled by __post_init__
    assert on_battery is not None
    assert outlet_on is not None
    if len(p.spare_off) or not feeds.all() or on_battery.any():
        return []
    ix = state.index
    off = ~outlet_on
    if not off.any():
        return []
    own = np.flatnonzero(ix.server_switchable & (ix.server_bus >= 0))  # a switchable server owns its bus
    bus_server = np.full(ix.n_bus, -1, dtype=np.int64)
    bus_server[ix.server_bus[own]] = own
    srv = bus_server[ix.psu_bus]
    psus = np.flatnonzero(off & (srv >= 0))
    psus = psus[(state.server_power_w[srv[psus]] > 0) & ~p.chain.server_dark[srv[psus]]]
    outlets = sorted({ix.psu_outlet_ids[int(k)] for k in psus})
    return [
        Action(kind=ActionKind.OUTLET_ON, target_id=o, reason="power back: PSU redundancy restored", not_before_s=at_s)
        for o in outlets
    ]


def _outlets(state: PowerState, servers: IntArray) -> list[tuple[int, str]]:
    """(server, outlet id) for every outlet feeding the given servers' own PSUs."""
    ix = state.index
    order = np.argsort(ix.psu_bus, kind="stable")
    start = np.searchsorted(ix.psu_bus[order], np.arange(ix.n_bus + 1))
    bus = ix.server_bus[servers]
    counts = start[bus + 1] - start[bus]
    first = np.repeat(start[bus], counts)
    offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    psus = order[first + offset]
    ids = ix.psu_outlet_ids
    return [(j, ids[k]) for j, k in zip(np.repeat(servers, counts).tolist(), psus.tolist(), strict=True)]


def _restore_actions(
    policy: GreedyAllocationPolicy, state: PowerState, p: AllocationProblem, new: FloatArray, cur: FloatArray
) -> list[Action]:
    ix = state.index
    t0 = state.t_s
    up = np.flatnonzero((new > 0) & (cur <= 0))
    if state.service_running is not None and len(up):
        # Closed loop: a service comes back only once every dependency is running again (a
        # dependency restored now, or still restarting, holds its dependants for a later plan).
        # Tier by tier: only the most important inherited tier with a service still to come
        # back is restored, so a less important one never runs while a more important one is
        # still down or restarting (zero priority inversions, also while services restart).
        running = (cur > 0) & state.service_running
        blocked = np.zeros(len(cur), dtype=bool)
        blocked[ix.dep_src[~running[ix.dep_dst]]] = True
        pending = (new > 0) & ~running & ~p.dead
        if pending.any():
            blocked |= p.rank > p.rank[pending].min()
        up = up[~blocked[up]]
    if len(up) == 0:
        return []
    # Hosts the plan needs that draw nothing now (switched off earlier, whoever did it).
    needed = np.unique(ix.wl_server[new[ix.wl_service] > 0])
    # (A PSU behind a switched-off outlet reports unavailable: do not read "dark" as "broken".)
    on = needed[(state.server_power_w[needed] <= 0) & ix.server_switchable[needed]]
    out = [
        Action(kind=ActionKind.OUTLET_ON, target_id=o, reason="power back: outlet on before restore", not_before_s=t0)
        for _, o in _outlets(state, on)
    ]
    # Most important tier first (no transient inversion), dependencies before dependants
    # inside a tier (a dependency never has a less important inherited tier than its dependant).
    order = up[np.lexsort((ix.service_restore_order[up], ix.service_dep_depth[up], p.rank[up]))]
    step, acc_w = 1 if out else 0, 0.0
    group = (int(p.rank[order[0]]), int(ix.service_dep_depth[order[0]]))
    for s in order.tolist():
        w = float(p.service_dyn_w[s] * new[s])
        key = (int(p.rank[s]), int(ix.service_dep_depth[s]))
        if key != group or acc_w + w > policy.inrush_step_w:
            step, acc_w, group = step + 1, 0.0, key
        acc_w += w
        out.append(
            Action(
                kind=ActionKind.SERVICE_RESTORE,
                target_id=ix.service_ids[s],
                value=float(new[s]),
                previous_value=float(cur[s]),
                reason="restore in dependency order (staggered inrush)",
                not_before_s=t0 + step * policy.restore_stagger_s,
            )
        )
    return out
