"""PSU load sharing (seed 000): per DC bus, output set-points that minimise conversion loss.

For every DC bus (a server's own PSUs, or a racklet's rectifiers) the policy chooses how the
bus load ``L`` is split among its PSUs. Candidates per bus: every non-empty subset of the
usable PSUs sharing ``L`` in proportion to rating (equal load fraction) or equally, plus, for pairs,
uneven splits on a grid. A candidate is valid when every output is within its rating; the one
with the least conversion loss ``Σ o/η(o/R) - o`` on the PSUs' efficiency curves wins. A PSU
left at 0 W stays live (hot standby) and takes load the moment another one fails.

* **Failure risk.** PSUs whose predicted failure probability is at least
  ``failure_prob_threshold`` carry nothing whenever the others can carry the bus; below the
  threshold, each watt on a PSU costs ``risk_cost_frac × p_fail`` extra watts.
* **N+1.** Any single live PSU failing must leave the rest able to carry ``L`` within their
  ratings; a bus that cannot meet this makes the decision ``infeasible`` (the set-points
  are still the least-loss ones).
* **Battery.** A PSU fed through a UPS on battery carries nothing while a mains-fed PSU of
  the same bus can (battery energy is kept for the buses that need it), and counts for N+1
  only while its UPS holds charge above the low-battery mark.

* **Stability.** A bus keeps its present split while it is valid and costs at most
  ``keep_tolerance_w`` more than the best one, so set-points do not chase load noise.
* **PDU phases.** A plan that would put a PDU phase over its capacity (parking a twin moves
  its bus's whole input onto one phase) spreads the buses loading that phase back to equal
  sharing.
* **Feed balance.** On 2N servers the least-loss plan at light load is one PSU carrying the
  bus and its twin in hot standby. Which twin carries is free when the twins are alike, so
  the policy swaps carriers (heaviest buses first) until the two feed sides (the root source
  above each PSU's PDU) differ by at most one bus's load. Without this every bus would pick
  the same twin and one feed would carry the whole site.

Bus load is the DC output: the bus's servers' AC power × ``nominal_efficiency_frac``.
"""

from __future__ import annotations

import logging
from itertools import combinations

import numpy as np
import numpy.typing as npt

from wattwise.decide.base import EfficiencyCurves, PowerState, SiteForecast
from wattwise.decide.chain import live_chain
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

BIG = 1e18


def _candidates(k: int, grid: int) -> FloatArray:
    """Unnormalised weight patterns over ``k`` units: subsets (rating-proportional and equal), pair splits."""
    rows: list[list[float]] = []
    for size in range(1, k + 1):
        for sub in combinations(range(k), size):
            rows.append([-1.0 if i in sub else 0.0 for i in range(k)])  # -1: "use rating"
            if size > 1:
                rows.append([1.0 if i in sub else 0.0 for i in range(k)])  # equal watts
    for a, b in combinations(range(k), 2):
        for f in np.linspace(0.0, 1.0, grid + 1)[1:-1]:
            row = [0.0] * k
            row[a], row[b] = float(f), float(1.0 - f)
            rows.append(row)
    return np.array(rows, dtype=np.float64)


class CurveLoadSharingPolicy:
    """Least-loss PSU set-points per DC bus, off failing units, N+1 kept.

    Args:
        failure_prob_threshold: Predicted failure probability from which a PSU is unloaded.
        risk_cost_frac: Extra cost per W on a PSU, per unit of failure probability.
        min_change_w: Set-point changes smaller than this are not sent (no flapping), W.
        split_grid: Number of uneven splits tried per PSU pair.
        keep_tolerance_w: A bus keeps its present split while that costs at most this much
            more than the best one (no set-point churn near a crossover), W.

    >>> import numpy as np
    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> from wattwise.decide.index import SiteIndex
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=4, servers_per_rack=4, seed=1)))
    >>> curves = EfficiencyCurves(load_frac=[[0.1, 0.2, 0.5, 1.0]], efficiency_frac=[[0.80, 0.90, 0.94, 0.91]])
    >>> state = PowerState(index=ix, server_power_w=ix.server_idle_w * 1.2, efficiency=curves)
    >>> d = CurveLoadSharingPolicy().decide(state, SiteForecast())
    >>> d.status.value, d.predicted_effect["loss_w"] < d.predicted_effect["equal_share_loss_w"]
    ('ok', True)
    >>> risky = SiteForecast(psu_failure_prob=np.r_[0.9, np.zeros(len(ix.psu_ids) - 1)])
    >>> [a.value for a in CurveLoadSharingPolicy().decide(state, risky).actions if a.target_id == ix.psu_ids[0]]
    [0.0]
    """

    name = "curve_load_sharing"

    def __init__(
        self,
        failure_prob_threshold: float = 0.5,
        risk_cost_frac: float = 0.2,
        min_change_w: float = 5.0,
        split_grid: int = 10,
        keep_tolerance_w: float = 1.0,
    ) -> None:
        self.failure_prob_threshold = failure_prob_threshold
        self.risk_cost_frac = risk_cost_frac
        self.min_change_w = min_change_w
        self.split_grid = split_grid
        self.keep_tolerance_w = keep_tolerance_w

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        """Set-points for every bus."""
        ix = state.index
        if len(ix.psu_ids) == 0:
            return Decision(policy_name=self.name, status=DecisionStatus.SKIPPED, reasons=("no PSUs",), t_s=state.t_s)
        bus_w, usable, mains, risk = bus_inputs(state, forecast)
        out_w = np.zeros(len(ix.psu_ids))
        n_per_bus = np.bincount(ix.psu_bus, minlength=ix.n_bus)
        reasons: list[str] = []
        for k in np.unique(n_per_bus[n_per_bus > 0]).tolist():
            buses = np.flatnonzero(n_per_bus == k)
            self._solve_group(state, buses, int(k), bus_w, usable, mains, risk, out_w)
        cur_w = current_output_w(state, bus_w)
        keep_current(state, out_w, cur_w, usable & mains, risk, self)
        balance_feeds(state, out_w, usable, mains, risk, self)
        reasons += respect_phases(state, out_w, bus_w, usable, usable & (risk < self.failure_prob_threshold))
        reasons += nplus1_problems(state, bus_w, usable)
        risky = (risk >= self.failure_prob_threshold) & (out_w > 0)
        reasons += [f"{ix.psu_ids[i]} predicted to fail but still needed for its bus" for i in np.flatnonzero(risky)]
        return self._decision(state, out_w, bus_w, usable, reasons)

    def _solve_group(
        self,
        state: PowerState,
        buses: IntArray,
        k: int,
        bus_w: FloatArray,
        usable: BoolArray,
        mains: BoolArray,
        risk: FloatArray,
        out_w: FloatArray,
    ) -> None:
        """Best candidate for every bus with ``k`` PSUs (writes ``out_w``)."""
        ix = state.index
        flat = np.flatnonzero(np.isin(ix.psu_bus, buses))
        psu: IntArray = flat[np.argsort(ix.psu_bus[flat], kind="stable")].reshape(len(buses), k)
        rating = ix.psu_rating_w[psu]
        cand = _candidates(k, self.split_grid)
        weights = np.where(cand[None, :, :] < 0, rating[:, None, :], cand[None, :, :])  # (b, c, k)
        weights = weights / np.maximum(weights.sum(axis=2, keepdims=True), 1e-12)
        used = weights > 0
        o = bus_w[buses][:, None, None] * weights
        valid = ~(used & ~usable[psu][:, None, :]).any(axis=2) & (o <= rating[:, None, :] + 1e-9).all(axis=2)
        loss = _loss_w(state.efficiency, state.nominal_efficiency_frac, ix.psu_curve[psu], rating, o)
        p = risk[psu][:, None, :]
        cost = loss + self.risk_cost_frac * (p * o).sum(axis=2)
        hard = (used & (p >= self.failure_prob_threshold)).any(axis=2)
        on_batt = (used & ~mains[psu][:, None, :]).any(axis=2)
        # A bus with no mains-fed PSU left shares its load by rating over every usable unit, so
        # each UPS battery drains at its share (a parked pair would empty one battery first).
        all_batt = np.asarray(~(mains[psu] & usable[psu]).any(axis=1), dtype=bool)
        spread = (used == usable[psu][:, None, :]).all(axis=2) & ((cand[None, :, :] < 0) | ~used).all(axis=2)
        not_spread = all_batt[:, None] & ~spread
        tier = np.where(valid, 0.0, 4.0) + np.where(hard, 2.0, 0.0) + np.where(on_batt & ~all_batt[:, None], 1.0, 0.0)
        tier = tier + np.where(not_spread, 0.5, 0.0)
        score = tier * BIG + np.minimum(cost, BIG / 10)
        pick = np.argmin(score, axis=1)
        out_w[psu] = np.where(usable[psu], o[np.arange(len(buses)), pick], 0.0)  # a dark bus carries nothing

    def _decision(
        self, state: PowerState, out_w: FloatArray, bus_w: FloatArray, usable: BoolArray, reasons: list[str]
    ) -> Decision:
        ix = state.index
        cur = current_output_w(state, bus_w)
        change = np.flatnonzero(np.abs(out_w - cur) >= self.min_change_w)
        actions = tuple(
            Action(
                kind=ActionKind.PSU_SETPOINT,
                target_id=ix.psu_ids[i],
                value=round(float(out_w[i]), 3),
                previous_value=round(float(cur[i]), 3),
                reason="least conversion loss" if usable[i] else "unit down or predicted to fail: unload",
                not_before_s=state.t_s,
            )
            for i in change.tolist()
        )
        eq = equal_share_output_w(state, bus_w, usable)
        effect = {
            "loss_w": float(conversion_loss_w(state, out_w).sum()),
            "equal_share_loss_w": float(conversion_loss_w(state, eq).sum()),
            "current_loss_w": float(conversion_loss_w(state, cur).sum()),
        }
        status = DecisionStatus.INFEASIBLE if reasons else DecisionStatus.OK
        if status is DecisionStatus.OK and not actions:
            status = DecisionStatus.SKIPPED
            reasons = ["set-points already optimal"]
        summary = f"{len(actions)} set-points over {ix.n_bus} buses; loss {effect['loss_w']:.0f} W"
        return Decision(
            policy_name=self.name,
            status=status,
            actions=actions,
            reasons=(summary, *reasons[:20]),
            predicted_effect=effect,
            t_s=state.t_s,
        )


def psu_side(state: PowerState) -> IntArray:
    """Root source node (feed, or an ATS's preferred feed) above each PSU's PDU."""
    ix = state.index
    root = np.arange(len(ix.node_parent))
    for _ in range(len(root)):
        up = ix.node_parent[root]
        if (up < 0).all():
            break
        root = np.where(up >= 0, up, root)
    out: IntArray = root[ix.pdu_node[ix.psu_pdu]]
    return out


def keep_current(
    state: PowerState,
    out_w: FloatArray,
    cur_w: FloatArray,
    usable: BoolArray,
    risk: FloatArray,
    policy: CurveLoadSharingPolicy,
) -> None:
    """Keep a bus's present split where it is valid and costs at most ``keep_tolerance_w`` more (in place).

    A kept split never loses more than equal sharing would on that bus.
    """
    ix = state.index
    n_bus = ix.n_bus
    total = np.bincount(ix.psu_bus, weights=cur_w, minlength=n_bus)
    want = np.bincount(ix.psu_bus, weights=out_w, minlength=n_bus).astype(np.float64)
    cur_w = cur_w * np.where(total > 1e-9, want / np.maximum(total, 1e-9), 0.0)[ix.psu_bus]  # same bus load
    bad = (cur_w > 1e-9) & (~usable | (risk >= policy.failure_prob_threshold))
    bad |= cur_w > ix.psu_rating_w + 1e-9
    bus_bad = (np.bincount(ix.psu_bus, weights=bad.astype(float), minlength=n_bus) > 0) | (total <= 1e-9)

    def bus_cost(o: FloatArray) -> FloatArray:
        per = conversion_loss_w(state, o) + policy.risk_cost_frac * risk * o
        return np.bincount(ix.psu_bus, weights=per, minlength=n_bus).astype(np.float64)

    def bus_loss(o: FloatArray) -> FloatArray:
        return np.bincount(ix.psu_bus, weights=conversion_loss_w(state, o), minlength=n_bus).astype(np.float64)

    no_worse_than_equal = bus_loss(cur_w) <= bus_loss(equal_share_output_w(state, want, usable)) + 1e-9
    keep = ~bus_bad & no_worse_than_equal & (bus_cost(cur_w) <= bus_cost(out_w) + policy.keep_tolerance_w)
    mask = keep[ix.psu_bus]
    out_w[mask] = cur_w[mask]


def balance_feeds(
    state: PowerState,
    out_w: FloatArray,
    usable: BoolArray,
    mains: BoolArray,
    risk: FloatArray,
    policy: CurveLoadSharingPolicy,
) -> None:
    """Swap the carrying twin of 2-PSU buses where that evens out two feed sides (in place).

    Only buses whose twins are interchangeable (same curve and rating, both usable, same
    source kind, on different sides, neither predicted to fail and a risk cost that differs by
    at most ``keep_tolerance_w``) are swapped, and only while the two sides differ by more
    than the largest such bus: heaviest first, each swap only if it narrows the difference.
    """
    ix = state.index
    n_per_bus = np.bincount(ix.psu_bus, minlength=ix.n_bus)
    buses = np.flatnonzero(n_per_bus == 2)
    if len(buses) == 0:
        return
    flat = np.flatnonzero(np.isin(ix.psu_bus, buses))
    psu: IntArray = flat[np.argsort(ix.psu_bus[flat], kind="stable")].reshape(len(buses), 2)
    side = psu_side(state)
    a, b = psu[:, 0], psu[:, 1]
    o = out_w[psu]
    free = (
        (side[a] != side[b])
        & usable[a]
        & usable[b]
        & (mains[a] == mains[b])
        & (ix.psu_curve[a] == ix.psu_curve[b])
        & (np.abs(ix.psu_rating_w[a] - ix.psu_rating_w[b]) < 1e-9)
        & (np.abs(o[:, 0] - o[:, 1]) > 1e-9)
        & (risk[psu] < policy.failure_prob_threshold).all(axis=1)
        & (policy.risk_cost_frac * np.abs(risk[a] - risk[b]) * np.abs(o[:, 0] - o[:, 1]) <= policy.keep_tolerance_w)
    )
    if not free.any():
        return
    load = np.bincount(side, weights=out_w, minlength=len(ix.node_parent))
    delta = np.abs(o[:, 0] - o[:, 1])
    band = float(delta[free].max())
    for j in np.flatnonzero(free)[np.argsort(-delta[free], kind="stable")].tolist():
        sa, sb = int(side[a[j]]), int(side[b[j]])
        carrier, other = (sa, sb) if out_w[a[j]] > out_w[b[j]] else (sb, sa)
        diff = load[carrier] - load[other]
        if diff <= band or delta[j] >= diff:
            continue
        out_w[a[j]], out_w[b[j]] = out_w[b[j]], out_w[a[j]]
        load[carrier] -= delta[j]
        load[other] += delta[j]


def respect_phases(
    state: PowerState, out_w: FloatArray, bus_w: FloatArray, usable: BoolArray, safe: BoolArray
) -> list[str]:
    """Spread buses back over all their PSUs where the plan overloads a PDU phase (in place).

    Parking one twin moves its bus's whole input onto one PDU phase. Where a phase would carry
    more than its capacity, the buses drawing above their share from it go back to sharing
    (equal watts, or by rating where equal watts would overload a unit; over the ``safe`` units
    only, where they can carry the bus): what the site was built for. A phase still over after
    that is reported.
    """
    ix = state.index
    if len(ix.psu_ids) == 0 or not len(ix.phase_capacity_w):
        return []
    row = ix.psu_pdu * 3 + ix.psu_phase
    cap = ix.phase_capacity_w.reshape(-1)

    def by_rating(units: BoolArray) -> FloatArray:
        r = np.where(units, ix.psu_rating_w, 0.0)
        total = np.bincount(ix.psu_bus, weights=r, minlength=ix.n_bus)
        share: FloatArray = bus_w[ix.psu_bus] * r / np.maximum(total[ix.psu_bus], 1e-12)
        return share

    equal = out_w.copy()
    done = np.zeros(ix.n_bus, dtype=bool)
    for units in (safe, usable):  # equal watts first (the baseline), then by rating
        for cand in (equal_share_output_w(state, bus_w, units), by_rating(units)):
            n_over = np.bincount(ix.psu_bus, weights=(cand > ix.psu_rating_w + 1e-9).astype(float), minlength=ix.n_bus)
            carried = np.bincount(ix.psu_bus, weights=cand, minlength=ix.n_bus)
            ok = ~done & (n_over == 0) & (np.abs(carried - bus_w) <= 1e-6 * np.maximum(bus_w, 1.0))
            equal = np.where(ok[ix.psu_bus], cand, equal)
            done |= ok
    eff = state.nominal_efficiency_frac
    for _ in range(3):
        load = np.bincount(row, weights=out_w / eff, minlength=len(cap))
        over = (load > cap + 1e-6) & (cap > 0)
        heavy = over[row] & (out_w > equal + 1e-6)
        if not heavy.any():
            break
        spread = np.zeros(ix.n_bus, dtype=bool)
        spread[ix.psu_bus[heavy]] = True
        out_w[spread[ix.psu_bus]] = equal[spread[ix.psu_bus]]
    load = np.bincount(row, weights=out_w / eff, minlength=len(cap))
    names = [
        f"{ix.node_ids[int(ix.pdu_node[r // 3])]}:L{r % 3 + 1}"
        for r in np.flatnonzero((load > cap + 1e-6) & (cap > 0)).tolist()
    ]
    return [f"PDU phase {n} over capacity even with equal sharing" for n in names[:5]]


def _loss_w(
    curves: EfficiencyCurves | None, nominal: float, curve: IntArray, rating: FloatArray, o: FloatArray
) -> FloatArray:
    """Conversion loss of outputs ``o`` (b, c, k), summed over units → (b, c)."""
    shape = o.shape
    flat_o = o.reshape(-1)
    flat_c = np.broadcast_to(curve[:, None, :], shape).reshape(-1)
    flat_r = np.broadcast_to(rating[:, None, :], shape).reshape(-1)
    eff = np.full(len(flat_o), nominal) if curves is None else curves.efficiency(flat_c, flat_o / flat_r)
    loss = np.where(flat_o > 0, flat_o / np.maximum(eff, 1e-3) - flat_o, 0.0)
    out: FloatArray = loss.reshape(shape).sum(axis=2)
    return out


def bus_inputs(state: PowerState, forecast: SiteForecast) -> tuple[FloatArray, BoolArray, BoolArray, FloatArray]:
    """Bus DC load (W), usable PSUs, mains-fed PSUs and failure probability per PSU."""
    ix = state.index
    chain = live_chain(state)
    power = state.server_power_w
    if forecast.server_power_upper_w is not None:
        power = np.maximum(power, forecast.server_power_upper_w)
    ok = ix.server_bus >= 0
    bus_w = np.bincount(ix.server_bus[ok], weights=power[ok], minlength=ix.n_bus).astype(np.float64)
    bus_w *= state.nominal_efficiency_frac
    usable = chain.psu_live.copy()
    mains = usable & ~chain.psu_on_battery
    risk = forecast.psu_failure_prob if forecast.psu_failure_prob is not None else np.zeros(len(ix.psu_ids))
    return bus_w, usable, mains, np.asarray(risk, dtype=np.float64)


def current_output_w(state: PowerState, bus_w: FloatArray) -> FloatArray:
    """Each PSU's present output: the state's share of its bus load (equal when unknown), W."""
    ix = state.index
    if state.psu_share_frac is not None:
        out: FloatArray = state.psu_share_frac * bus_w[ix.psu_bus]
        return out
    n = np.bincount(ix.psu_bus, minlength=ix.n_bus).astype(np.float64)
    equal: FloatArray = bus_w[ix.psu_bus] / np.maximum(n[ix.psu_bus], 1.0)
    return equal


def equal_share_output_w(state: PowerState, bus_w: FloatArray, usable: BoolArray) -> FloatArray:
    """Baseline: bus load split equally among usable PSUs, W."""
    ix = state.index
    n = np.bincount(ix.psu_bus, weights=usable.astype(float), minlength=ix.n_bus)
    out: FloatArray = np.where(usable, bus_w[ix.psu_bus] / np.maximum(n[ix.psu_bus], 1.0), 0.0)
    return out


def conversion_loss_w(state: PowerState, out_w: FloatArray) -> FloatArray:
    """Loss per PSU delivering ``out_w`` on its efficiency curve, W."""
    ix = state.index
    if state.efficiency is None:
        return np.where(out_w > 0, out_w / state.nominal_efficiency_frac - out_w, 0.0)
    return state.efficiency.input_w(ix.psu_curve, ix.psu_rating_w, out_w) - out_w


def nplus1_problems(state: PowerState, bus_w: FloatArray, usable: BoolArray) -> list[str]:
    """Buses where losing the largest usable PSU leaves the rest unable to carry the load."""
    ix = state.index
    cap = np.where(usable, ix.psu_rating_w, 0.0)
    total = np.bincount(ix.psu_bus, weights=cap, minlength=ix.n_bus)
    largest = np.zeros(ix.n_bus)
    np.maximum.at(largest, ix.psu_bus, cap)
    bad = np.flatnonzero((total - largest < bus_w - 1e-9) & (bus_w > 0))
    bus_name = _bus_names(state)
    return [
        f"bus {bus_name[b]}: N+1 lost ({total[b] - largest[b]:.0f} W left after one failure < {bus_w[b]:.0f} W)"
        for b in bad.tolist()
    ]


def _bus_names(state: PowerState) -> list[str]:
    ix = state.index
    names = [""] * ix.n_bus
    for i, b in enumerate(ix.psu_bus.tolist()):
        if not names[b]:
            names[b] = ix.psu_ids[i].rsplit("-", 1)[0]
    return names
