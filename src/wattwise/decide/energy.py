"""Energy-source awareness (seed 001): defer flexible work to cheaper or lower-carbon hours.

Each future slot of the forecast's price and carbon series gets a cost
``price_weight × price/mean(price) + carbon_weight × carbon/mean(carbon)``. When the slot now
costs at least ``min_saving_frac`` more than the cheapest slot within ``max_defer_s``, the
workloads of flexible services are deferred to that slot (``WORKLOAD_DEFER``, ``value`` = the
delay in seconds). When now is (within the same tolerance) the cheapest slot, deferred
flexible services start again (``SERVICE_RESTORE``, dependencies first).

It never breaks the other rules: a flexible service that a non-flexible service depends on
(directly or not) is never deferred, and nothing restarts while the allocation model says the
site cannot carry every service at full level (power event, overload).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from wattwise.decide.allocation_problem import build_problem
from wattwise.decide.base import PowerState, SiteForecast
from wattwise.decide.index import SiteIndex
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus

logger = logging.getLogger(__name__)

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


def deferrable(ix: SiteIndex) -> BoolArray:
    """Flexible services none of whose (transitive) dependants is inflexible.

    >>> import numpy as np
    >>> from wattwise.decide.index import dag_arrays
    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=40, services=30, seed=4)))
    >>> bool((deferrable(ix) <= ix.service_flexible).all())
    True
    """
    ok = ix.service_flexible.copy()
    for _ in range(len(ok) + 1):
        blocked = ix.dep_dst[~ok[ix.dep_src]]
        if ok[blocked].any():
            ok[blocked] = False
        else:
            break
    return ok


class CostAwareDeferralPolicy:
    """Defer flexible workloads to the cheapest / lowest-carbon slot in reach.

    Args:
        price_weight: Weight of the normalised price.
        carbon_weight: Weight of the normalised carbon intensity.
        min_saving_frac: Least relative saving worth a deferral.
        max_defer_s: Furthest a workload may be deferred, s.

    >>> import numpy as np
    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=40, services=30, seed=4)))
    >>> st = PowerState(index=ix, server_power_w=ix.server_idle_w)
    >>> f = SiteForecast(price_per_kwh=np.array([0.30, 0.25, 0.10, 0.20]), carbon_g_per_kwh=np.full(4, 300.0))
    >>> d = CostAwareDeferralPolicy().decide(st, f)
    >>> d.status.value, {a.kind.value for a in d.actions}, {a.value for a in d.actions}
    ('ok', {'workload_defer'}, {7200.0})
    """

    name = "cost_aware_deferral"

    def __init__(
        self,
        price_weight: float = 0.5,
        carbon_weight: float = 0.5,
        min_saving_frac: float = 0.15,
        max_defer_s: float = 6 * 3600.0,
    ) -> None:
        self.price_weight = price_weight
        self.carbon_weight = carbon_weight
        self.min_saving_frac = min_saving_frac
        self.max_defer_s = max_defer_s

    def slot_cost(self, forecast: SiteForecast) -> FloatArray | None:
        """Cost of each slot in reach (None without signals)."""
        parts = []
        for series, w in ((forecast.price_per_kwh, self.price_weight), (forecast.carbon_g_per_kwh, self.carbon_weight)):
            if series is not None and len(series) and w > 0:
                parts.append(w * series / max(float(np.mean(np.abs(series))), 1e-9))
        if not parts:
            return None
        n = min(len(p) for p in parts)
        n = min(n, int(self.max_defer_s // forecast.slot_s) + 1)
        cost: FloatArray = np.sum([p[:n] for p in parts], axis=0)
        return cost

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        """Defer or resume flexible work."""
        cost = self.slot_cost(forecast)
        if cost is None:
            return self._skip(state, "no price or carbon forecast")
        ix = state.index
        assert state.service_level_frac is not None
        best = int(np.argmin(cost))
        saving = (cost[0] - cost[best]) / max(abs(float(cost[0])), 1e-9)
        movable = deferrable(ix)
        on = state.service_level_frac > 0
        if best > 0 and saving >= self.min_saving_frac:
            wls = np.flatnonzero(movable[ix.wl_service] & on[ix.wl_service])
            delay = best * forecast.slot_s
            actions = [
                Action(
                    kind=ActionKind.WORKLOAD_DEFER,
                    target_id=ix.wl_ids[w],
                    value=delay,
                    not_before_s=state.t_s,
                    reason=f"slot +{delay:.0f} s is {saving:.0%} cheaper/cleaner",
                )
                for w in wls.tolist()
            ]
            return self._done(state, actions, f"defer {len(actions)} flexible workloads by {delay:.0f} s")
        waiting = movable & ~on
        if not waiting.any():
            return self._skip(state, "nothing to defer or resume")
        p = build_problem(state, forecast)
        if p.violations(np.zeros(p.n_service, dtype=np.int64)):
            return self._skip(state, "site cannot carry every service now; deferred work waits")
        order = ix.service_topo[waiting[ix.service_topo]]
        actions = [
            Action(
                kind=ActionKind.SERVICE_RESTORE,
                target_id=ix.service_ids[s],
                value=1.0,
                not_before_s=state.t_s,
                reason="cheapest slot in reach: resume deferred work",
            )
            for s in order.tolist()
        ]
        return self._done(state, actions, f"resume {len(actions)} deferred services")

    def _skip(self, state: PowerState, why: str) -> Decision:
        return Decision(policy_name=self.name, status=DecisionStatus.SKIPPED, reasons=(why,), t_s=state.t_s)

    def _done(self, state: PowerState, actions: list[Action], why: str) -> Decision:
        return Decision(
            policy_name=self.name,
            status=DecisionStatus.OK if actions else DecisionStatus.SKIPPED,
            actions=tuple(actions),
            reasons=(why,),
            t_s=state.t_s,
        )
