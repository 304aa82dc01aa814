"""Predictive overload avoidance, migration and periodic rebalance (seeds 001, 003, 004).

Every limit is one row of a sparse matrix ``M`` (n_limit × n_server) applied to the servers'
planned power (the forecast's upper bound where given): the live chain's feeds, ATS, UPS,
PDUs and phases; each rack's cooling; each racklet's power module (its rectifier ratings
less the largest one, N+1) and cooling module (zero capacity once its failure is predicted).

A limit is *at risk* when its planned load exceeds ``(1 - margin_frac) × capacity``; a server
is at risk when its predicted failure probability reaches ``failure_prob_threshold``. The
policy then, within ``max_migrations`` per call (the per-period budget):

1. picks workloads on the servers loading an at-risk limit, least disruptive first
   (:func:`disruption_score`: criticality, dependants, state size, migration cost), until
   the excess is covered; a failing server is evacuated entirely, most critical first;
2. sends each to the server with the most headroom that is on another rack, loads no
   at-risk limit and stays under the margin on every limit it feeds (so it does not become
   at risk itself); ``WORKLOAD_MIGRATE`` is make-before-break: start on ``dest_id``, wait
   until healthy, then stop on ``source_id``;
3. caps (``POWER_CAP``) only the excess that migration cannot clear, or clear in time
   (a workload whose copy takes longer than the forecast horizon is not counted).

:class:`RebalancePolicy` is the seed-003 periodic variant (the controller calls it every
``period_s``): racks over ``high_frac`` of power or cooling shed load to racks under it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from wattwise.decide.base import PowerState, SiteForecast
from wattwise.decide.chain import live_chain
from wattwise.decide.index import SiteIndex
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class Limits:
    """Every power and cooling limit as rows over servers.

    Attributes:
        names: Limit names (``<node>``, ``<pdu>:L<k>``, ``<rack>:cooling``, ``<racklet>:power``...).
        matrix: CSR (n_limit × n_server): share of each server's power on each limit.
        capacity_w: Capacity per limit, W.
        load_w: Planned load per limit, W.
        server_w: Planned power per server, W.
    """

    names: tuple[str, ...]
    matrix: sp.csr_matrix
    capacity_w: FloatArray
    load_w: FloatArray
    server_w: FloatArray


def build_limits(state: PowerState, forecast: SiteForecast, fail_threshold: float = 0.5) -> Limits:
    """Assemble :class:`Limits` from the live chain, racks and racklets."""
    ix = state.index
    chain = live_chain(state)
    server_w = state.server_power_w
    if forecast.server_power_upper_w is not None:
        server_w = np.maximum(server_w, forecast.server_power_upper_w)
    n_srv = len(ix.server_ids)
    cols = np.arange(n_srv)
    ok_rack = ix.server_rack >= 0
    rack_m = sp.csr_matrix(
        (np.ones(int(ok_rack.sum())), (ix.server_rack[ok_rack], cols[ok_rack])), shape=(len(ix.rack_ids), n_srv)
    )
    rl = np.where(ok_rack, ix.rack_racklet[np.maximum(ix.server_rack, 0)], -1)
    ok_rl = rl >= 0
    rl_m = sp.csr_matrix((np.ones(int(ok_rl.sum())), (rl[ok_rl], cols[ok_rl])), shape=(len(ix.racklet_ids), n_srv))
    rl_power_cap, rl_cool_cap = _racklet_caps(state, forecast, fail_threshold)
    matrix = sp.vstack([chain.server_to_row, rack_m, rl_m, rl_m]).tocsr()
    cap = np.concatenate([chain.capacity_w, ix.rack_cooling_capacity_w, rl_power_cap, rl_cool_cap])
    load = matrix @ server_w
    n_chain = len(chain.row_names)
    if forecast.node_load_upper_w is not None:
        node_up = np.nan_to_num(forecast.node_load_upper_w, nan=0.0)
        load[: len(node_up)] = np.maximum(load[: len(node_up)], node_up)
    names = (
        chain.row_names
        + tuple(f"{r}:cooling" for r in ix.rack_ids)
        + tuple(f"{r}:power" for r in ix.racklet_ids)
        + tuple(f"{r}:cooling" for r in ix.racklet_ids)
    )
    assert len(names) == n_chain + len(ix.rack_ids) + 2 * len(ix.racklet_ids)
    return Limits(names, matrix, cap, load, server_w)


def _racklet_caps(state: PowerState, forecast: SiteForecast, threshold: float) -> tuple[FloatArray, FloatArray]:
    """Racklet power capacity (N+1 over rectifiers) and cooling available now (0 if isolated).

    Either is 0 once the module's failure is predicted (probability at ``threshold`` or more).
    """
    ix = state.index
    n_rl = len(ix.racklet_ids)
    n_server_bus = ix.n_bus - n_rl
    bus = ix.psu_bus - n_server_bus
    m = bus >= 0
    total = np.bincount(bus[m], weights=ix.psu_rating_w[m], minlength=n_rl)
    largest = np.zeros(n_rl)
    np.maximum.at(largest, bus[m], ix.psu_rating_w[m])
    power = total - largest
    assert state.racklet_cooling_available_w is not None
    assert state.racklet_isolated is not None
    cool = np.minimum(ix.racklet_cooling_capacity_w, state.racklet_cooling_available_w)
    cool = np.where(state.racklet_isolated, 0.0, cool)
    if forecast.racklet_power_failure_prob is not None:
        power = np.where(forecast.racklet_power_failure_prob >= threshold, 0.0, power)
    if forecast.racklet_cooling_failure_prob is not None:
        cool = np.where(forecast.racklet_cooling_failure_prob >= threshold, 0.0, cool)
    return power, cool


def workload_power_w(ix: SiteIndex, server_w: FloatArray) -> FloatArray:
    """Dynamic power each workload takes with it when it moves (its CPU share), W."""
    dyn = np.maximum(server_w - ix.server_idle_w, 0.0)
    tot = np.bincount(ix.wl_server, weights=ix.wl_cpu_frac, minlength=len(ix.server_ids))
    out: FloatArray = dyn[ix.wl_server] * ix.wl_cpu_frac / np.maximum(tot[ix.wl_server], 1e-12)
    return out


def disruption_score(
    ix: SiteIndex,
    *,
    tier_weight: float = 0.4,
    dependants_weight: float = 0.3,
    state_weight: float = 0.2,
    cost_weight: float = 0.1,
    s_per_gib: float = 2.0,
    horizon_s: float = 900.0,
) -> FloatArray:
    """Disruption of moving each workload, 0 (harmless) … 1 (most disruptive).

    Criticality (its service's inherited tier), how many services depend on it, how much
    state it must copy, and the copy time relative to the horizon.

    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=20, servers_per_rack=10, seed=2)))
    >>> s = disruption_score(ix)
    >>> bool(((s >= 0) & (s <= 1)).all())
    True
    """
    crit = (3 - ix.service_eff_rank[ix.wl_service]) / 3.0
    deps = ix.service_n_dependants[ix.wl_service].astype(np.float64)
    deps = deps / max(float(deps.max()), 1.0) if len(deps) else deps
    state = ix.wl_state_gib / max(float(ix.wl_state_gib.max()), 1e-9) if len(ix.wl_ids) else ix.wl_state_gib
    cost = np.minimum(ix.wl_state_gib * s_per_gib / horizon_s, 1.0)
    out: FloatArray = tier_weight * crit + dependants_weight * deps + state_weight * state + cost_weight * cost
    return out


def _max_add_w(lim: Limits, headroom: FloatArray) -> FloatArray:
    """Most power each server can take before some limit it feeds is exhausted, W."""
    t = lim.matrix.T.tocsr()
    ratio = np.where(t.data > 0, headroom[t.indices] / np.maximum(t.data, 1e-12), np.inf)
    out = np.full(t.shape[0], np.inf)
    nz = np.diff(t.indptr) > 0
    out[nz] = np.minimum.reduceat(ratio, t.indptr[:-1][nz])
    return out


class PredictiveMigrationPolicy:
    """Move workloads off limits forecast to overload and off nodes predicted to fail.

    Args:
        margin_frac: Headroom kept under every limit (at risk above ``1 - margin_frac``).
        failure_prob_threshold: Failure probability from which a server/module is at risk.
        max_migrations: Migration budget per call (per period).
        s_per_gib: Copy time per GiB of workload state, s.
        tier_weight: Disruption-score weight of criticality.
        dependants_weight: Disruption-score weight of dependants.
        state_weight: Disruption-score weight of state size.
        cost_weight: Disruption-score weight of copy time.

    >>> import numpy as np
    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=40, servers_per_rack=10, seed=2)))
    >>> fail = np.zeros(40); fail[3] = 0.9
    >>> d = PredictiveMigrationPolicy().decide(PowerState(index=ix, server_power_w=ix.server_idle_w * 1.5),
    ...                                        SiteForecast(server_failure_prob=fail))
    >>> d.status.value, {a.source_id for a in d.actions if a.kind.value == "workload_migrate"} == {ix.server_ids[3]}
    ('ok', True)
    """

    name = "predictive_migration"

    def __init__(
        self,
        margin_frac: float = 0.1,
        failure_prob_threshold: float = 0.5,
        max_migrations: int = 20,
        s_per_gib: float = 2.0,
        tier_weight: float = 0.4,
        dependants_weight: float = 0.3,
        state_weight: float = 0.2,
        cost_weight: float = 0.1,
    ) -> None:
        self.margin_frac = margin_frac
        self.failure_prob_threshold = failure_prob_threshold
        self.max_migrations = max_migrations
        self.s_per_gib = s_per_gib
        self.tier_weight = tier_weight
        self.dependants_weight = dependants_weight
        self.state_weight = state_weight
        self.cost_weight = cost_weight

    def at_risk(self, state: PowerState, forecast: SiteForecast) -> tuple[Limits, BoolArray, BoolArray]:
        """Limits, at-risk limits and at-risk (failing) servers."""
        lim = build_limits(state, forecast, self.failure_prob_threshold)
        risky = lim.load_w > (1.0 - self.margin_frac) * lim.capacity_w
        fail = forecast.server_failure_prob
        failing = (
            fail >= self.failure_prob_threshold if fail is not None else np.zeros(len(state.index.server_ids), bool)
        )
        return lim, risky, np.asarray(failing, dtype=bool)

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        """Plan migrations (and caps where migration cannot help in time)."""
        lim, risky, failing = self.at_risk(state, forecast)
        if not risky.any() and not failing.any():
            return Decision(
                policy_name=self.name, status=DecisionStatus.SKIPPED, reasons=("nothing at risk",), t_s=state.t_s
            )
        target = (1.0 - self.margin_frac) * lim.capacity_w
        planner = _Planner(self, state, forecast, lim, risky, failing, target)
        planner.evacuate_failing()
        planner.relieve(np.flatnonzero(risky))
        return planner.decision()


class _Planner:
    """Mutable working state of one migration plan (local to one ``decide`` call)."""

    def __init__(
        self,
        policy: PredictiveMigrationPolicy,
        state: PowerState,
        forecast: SiteForecast,
        lim: Limits,
        risky: BoolArray,
        failing: BoolArray,
        target_w: FloatArray,
    ) -> None:
        self.p, self.state, self.lim, self.failing = policy, state, lim, failing
        ix = state.index
        self.ix = ix
        self.horizon_s = forecast.horizon_s
        self.load = lim.load_w.copy()
        self.target_w = target_w
        self.server_w = lim.server_w.copy()
        self.wl_w = workload_power_w(ix, lim.server_w)
        self.score = disruption_score(
            ix,
            tier_weight=policy.tier_weight,
            dependants_weight=policy.dependants_weight,
            state_weight=policy.state_weight,
            cost_weight=policy.cost_weight,
            s_per_gib=policy.s_per_gib,
            horizon_s=forecast.horizon_s,
        )
        self.csc = lim.matrix.tocsc()
        touches = np.asarray(lim.matrix[np.flatnonzero(risky)].sum(axis=0)).ravel() > 0
        self.blocked = failing | touches
        self.moved: set[int] = set()
        self.actions: list[Action] = []
        self.reasons: list[str] = []
        self.caps = 0

    def _dest(self, wl: int) -> int:
        """Best destination server for a workload, or -1."""
        ix = self.ix
        src = int(ix.wl_server[wl])
        head = self.target_w - self.load
        room = np.minimum(_max_add_w(self.lim, head), ix.server_peak_w - self.server_w)
        ok = (room >= self.wl_w[wl]) & ~self.blocked & (ix.server_rack != ix.server_rack[src])
        ok[src] = False
        if not ok.any():
            return -1
        return int(np.argmax(np.where(ok, room, -np.inf)))

    def _move(self, wl: int, why: str) -> bool:
        if len(self.moved) >= self.p.max_migrations or wl in self.moved:
            return False
        dest = self._dest(wl)
        if dest < 0:
            return False
        ix, w = self.ix, float(self.wl_w[wl])
        src = int(ix.wl_server[wl])
        self.load -= self.csc[:, src].toarray().ravel() * w
        self.load += self.csc[:, dest].toarray().ravel() * w
        self.server_w[src] -= w
        self.server_w[dest] += w
        self.moved.add(wl)
        self.actions.append(
            Action(
                kind=ActionKind.WORKLOAD_MIGRATE,
                target_id=ix.wl_ids[wl],
                source_id=ix.server_ids[src],
                dest_id=ix.server_ids[dest],
                value=round(w, 3),
                reason=f"{why}; make-before-break: start on {ix.server_ids[dest]}, then stop on {ix.server_ids[src]}",
                not_before_s=self.state.t_s,
            )
        )
        return True

    def evacuate_failing(self) -> None:
        """Move every movable workload off failing servers, most critical first."""
        ix = self.ix
        for s in np.flatnonzero(self.failing).tolist():
            self.actions.append(
                Action(kind=ActionKind.NODE_CORDON, target_id=ix.server_ids[s], reason="predicted to fail")
            )
            wls = np.flatnonzero((ix.wl_server == s) & ix.wl_migratable)
            for wl in wls[np.argsort(ix.service_eff_rank[ix.wl_service[wls]], kind="stable")].tolist():
                if not self._move(wl, f"{ix.server_ids[s]} predicted to fail"):
                    self.reasons.append(f"{ix.wl_ids[wl]} could not leave failing {ix.server_ids[s]}")

    def relieve(self, limits: IntArray) -> None:
        """Move least-disruptive workloads until each at-risk limit is under its target."""
        ix, m = self.ix, self.lim.matrix
        in_time = ix.wl_state_gib * self.p.s_per_gib <= self.horizon_s
        for c in limits[np.argsort(self.target_w[limits] - self.load[limits])].tolist():
            servers = m.indices[m.indptr[c] : m.indptr[c + 1]]
            wls = np.flatnonzero(np.isin(ix.wl_server, servers) & ix.wl_migratable & in_time)
            for wl in wls[np.argsort(self.score[wls], kind="stable")].tolist():
                if self.load[c] <= self.target_w[c]:
                    break
                self._move(wl, f"{self.lim.names[c]} forecast over {self.target_w[c]:.0f} W")
            if self.load[c] > self.target_w[c]:
                self._cap(c, servers)

    def _cap(self, c: int, servers: IntArray) -> None:
        """Cap the largest servers on limit ``c`` by the overload migration could not clear.

        Only a forecast overload (load above capacity) is capped; load inside the margin is
        left for the next period's migrations.
        """
        m = self.lim.matrix
        share = m.data[m.indptr[c] : m.indptr[c + 1]]
        excess = self.load[c] - self.lim.capacity_w[c]
        dyn = np.maximum(self.server_w[servers] - self.ix.server_idle_w[servers], 0.0) * share
        if excess > dyn.sum():
            self.reasons.append(f"{self.lim.names[c]}: excess {excess:.0f} W beyond what capping can clear")
        for i in np.argsort(-dyn).tolist():
            if excess <= 0:
                break
            s, cut = int(servers[i]), min(float(dyn[i]), excess)
            if cut <= 0:
                continue
            cap_w = float(self.server_w[s] - cut / max(float(share[i]), 1e-9))
            self.actions.append(
                Action(
                    kind=ActionKind.POWER_CAP,
                    target_id=self.ix.server_ids[s],
                    value=round(cap_w, 1),
                    previous_value=round(float(self.ix.server_peak_w[s]), 1),
                    reason=f"{self.lim.names[c]}: migration cannot clear it in time",
                    not_before_s=self.state.t_s,
                )
            )
            self.load -= self.csc[:, s].toarray().ravel() * (self.server_w[s] - cap_w)
            self.server_w[s] = cap_w
            excess -= cut
            self.caps += 1

    def decision(self) -> Decision:
        over = np.flatnonzero(self.load > self.lim.capacity_w + 1e-6)
        cap = self.lim.capacity_w
        frac = np.divide(self.load, cap, out=np.where(self.load > 0, np.inf, 0.0), where=cap > 0)
        reasons = [f"{len(self.moved)} migrations, {self.caps} caps (budget {self.p.max_migrations})"]
        reasons += self.reasons[:20] + [f"{self.lim.names[c]} still over capacity" for c in over[:20].tolist()]
        bad = bool(self.reasons) or len(over) > 0
        return Decision(
            policy_name=self.p.name,
            status=DecisionStatus.INFEASIBLE if bad else DecisionStatus.OK,
            actions=tuple(self.actions),
            reasons=tuple(reasons),
            predicted_effect={"max_load_frac": float(np.max(frac, initial=0.0))},
            t_s=self.state.t_s,
        )


class RebalancePolicy(PredictiveMigrationPolicy):
    """Periodic rebalance (seed 003): racks above ``high_frac`` of power or cooling give load away.

    The controller runs it every ``period_s`` (300 s in the seed); the policy itself keeps no
    clock. It is :class:`PredictiveMigrationPolicy` with the margin set to ``1 - high_frac``.

    Args:
        period_s: How often the controller should call it, s.
        high_frac: Utilisation above which a limit gives load away.
        max_migrations: Migration budget per call.

    >>> import dataclasses, numpy as np
    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=60, servers_per_rack=20, seed=2)))
    >>> ix = dataclasses.replace(ix, rack_cooling_capacity_w=np.full(len(ix.rack_ids), 5000.0))
    >>> hot = np.where(ix.server_rack == 2, ix.server_peak_w, ix.server_idle_w)  # rack r00003 runs hot
    >>> d = RebalancePolicy().decide(PowerState(index=ix, server_power_w=hot), SiteForecast())
    >>> d.reasons, {ix.rack_ids[ix.server_rack[ix.server_ids.index(a.source_id)]] for a in d.actions}
    (('10 migrations, 0 caps (budget 10)',), {'r00003'})
    """

    name = "rack_rebalance"

    def __init__(self, period_s: float = 300.0, high_frac: float = 0.8, max_migrations: int = 10) -> None:
        super().__init__(margin_frac=1.0 - high_frac, max_migrations=max_migrations)
        self.period_s = period_s
        self.high_frac = high_frac
