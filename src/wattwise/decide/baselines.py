"""Baselines the benchmark compares against (same contract, deliberately simple).

* :class:`NutShutdownAllPolicy` — what NUT's ``upsmon`` does: on low battery, shut down every
  host fed by the UPS (all services, critical included); restore everything at once when
  utility power returns.
* :class:`ReactiveThresholdPolicy` — no forecast, no dependencies: when a limit is over
  ``high_frac`` of capacity *now*, or a UPS on battery falls under ``charge_frac``, shed the
  lowest tier that still runs, a whole tier per call.
* :class:`SeedGreedyPolicy` — the seed-002 ``allocatePower`` pseudocode, faithfully, flaws
  included: ``powerBudget = UPS_Capacity * UPS_Remaining_Runtime`` (watts × seconds compared
  with watts of demand), dependencies ignored, the first service that does not fit is
  throttled to whatever budget is left (any fraction, not an allowed level) and the loop
  breaks out, leaving every later service as it was.
* :class:`NoMigrationPolicy` — never moves anything.
* :class:`EqualLoadSharingPolicy` — every live PSU of a bus carries an equal share.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from wattwise.decide.allocation_problem import build_problem
from wattwise.decide.base import PowerState, SiteForecast
from wattwise.decide.chain import live_chain
from wattwise.decide.load_sharing import bus_inputs, current_output_w, equal_share_output_w
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _decision(name: str, state: PowerState, actions: list[Action], why: str) -> Decision:
    return Decision(
        policy_name=name,
        status=DecisionStatus.OK if actions else DecisionStatus.SKIPPED,
        actions=tuple(actions),
        reasons=(why,),
        t_s=state.t_s,
    )


def _levels(state: PowerState, new: FloatArray, why: str) -> list[Action]:
    """Actions moving every service from its current level to ``new`` (no ordering)."""
    ix = state.index
    assert state.service_level_frac is not None
    cur = state.service_level_frac
    out: list[Action] = []
    for s in np.flatnonzero(np.abs(new - cur) > 1e-9).tolist():
        kind = (
            ActionKind.SERVICE_SHED
            if new[s] <= 0
            else ActionKind.SERVICE_RESTORE
            if cur[s] <= 0
            else ActionKind.THROTTLE
        )
        out.append(
            Action(
                kind=kind,
                target_id=ix.service_ids[s],
                value=float(new[s]),
                previous_value=float(cur[s]),
                reason=why,
                not_before_s=state.t_s,
            )
        )
    return out


def _power_event(state: PowerState) -> bool:
    chain = live_chain(state)
    return bool(chain.ups_battery.any())


class NutShutdownAllPolicy:
    """NUT-style: shut down everything behind a UPS at low battery; power back → all on.

    Args:
        low_battery_frac: Charge at which the UPS reports low battery (``None``: the site's).

    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> from wattwise.decide.index import SiteIndex
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=20, servers_per_rack=10, seed=1)))
    >>> low = PowerState(index=ix, server_power_w=ix.server_idle_w, feed_available=[False] * 4,
    ...                  ups_charge_frac=[0.1, 0.1])
    >>> len(NutShutdownAllPolicy().decide(low, SiteForecast()).actions) == len(ix.service_ids)
    True
    """

    name = "nut_shutdown_all"

    def __init__(self, low_battery_frac: float | None = None) -> None:
        self.low_battery_frac = low_battery_frac

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        """Shed all at low battery; restore all when no UPS runs from battery."""
        ix = state.index
        chain = live_chain(state)
        assert state.ups_charge_frac is not None
        low = (
            ix.ups_low_battery_frac
            if self.low_battery_frac is None
            else np.full(len(ix.ups_node), self.low_battery_frac)
        )
        lb = chain.ups_battery & (state.ups_charge_frac <= low)
        if lb.any():
            return _decision(
                self.name,
                state,
                _levels(state, np.zeros(len(ix.service_ids)), "UPS low battery"),
                "low battery: shutdown all",
            )
        if not chain.ups_battery.any():
            return _decision(self.name, state, _levels(state, np.ones(len(ix.service_ids)), "power back"), "on line")
        return _decision(self.name, state, [], "on battery, waiting for low battery")


class ReactiveThresholdPolicy:
    """Shed the lowest running tier when a limit or battery crosses a threshold now.

    Args:
        high_frac: Load fraction of capacity that triggers shedding.
        charge_frac: Battery charge under which shedding starts on battery.

    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> from wattwise.decide.index import SiteIndex
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=20, servers_per_rack=10, services=8, seed=1)))
    >>> low = PowerState(index=ix, server_power_w=ix.server_idle_w, feed_available=[False] * 4,
    ...                  ups_charge_frac=[0.4, 0.4])
    >>> d = ReactiveThresholdPolicy().decide(low, SiteForecast())
    >>> d.reasons, {ix.service_rank[ix.service_ids.index(a.target_id)] for a in d.actions}
    (('shed tier 3',), {np.int64(3)})
    """

    name = "reactive_threshold"

    def __init__(self, high_frac: float = 0.95, charge_frac: float = 0.5) -> None:
        self.high_frac = high_frac
        self.charge_frac = charge_frac

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        """One tier shed per call while triggered; all back when calm and on line."""
        ix = state.index
        assert state.service_level_frac is not None
        assert state.ups_charge_frac is not None
        chain = live_chain(state)
        load = chain.server_to_row @ state.server_power_w  # measured, not forecast
        hot = (load > self.high_frac * chain.capacity_w).any()
        low = (chain.ups_battery & (state.ups_charge_frac < self.charge_frac)).any()
        running = state.service_level_frac > 0
        if hot or low:
            ranks = ix.service_rank[running & (ix.service_rank > 0)]
            if len(ranks) == 0:
                return _decision(self.name, state, [], "triggered but only critical services run")
            new = np.where(ix.service_rank == ranks.max(), 0.0, state.service_level_frac)
            return _decision(self.name, state, _levels(state, new, "threshold crossed"), f"shed tier {ranks.max()}")
        if not chain.ups_battery.any():
            return _decision(self.name, state, _levels(state, np.ones(len(ix.service_ids)), "calm"), "restore all")
        return _decision(self.name, state, [], "below thresholds")


class SeedGreedyPolicy:
    """The seed-002 ``allocatePower`` as written (see the module docstring for its flaws).

    Priority numbers: critical 4, high 3, medium 2, low 1; demand is the service's full
    power; the runtime is the UPS's usable energy over its present load.

    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> from wattwise.decide.index import SiteIndex
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=20, servers_per_rack=10, services=8, seed=1)))
    >>> low = PowerState(index=ix, server_power_w=ix.server_peak_w, feed_available=[False] * 4,
    ...                  ups_charge_frac=[0.21, 0.21])
    >>> d = SeedGreedyPolicy().decide(low, SiteForecast())
    >>> d.reasons[0].startswith("budget"), d.actions  # W·s budget dwarfs W demand: sheds nothing
    (True, ())
    """

    name = "seed_greedy"

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        """Run ``allocatePower(UPS_Capacity * UPS_Remaining_Runtime, services)`` on a power event."""
        ix = state.index
        assert state.service_level_frac is not None
        chain = live_chain(state)
        if not chain.ups_battery.any():
            return _decision(self.name, state, [], "no power interruption")
        p = build_problem(state, forecast)
        load_w = chain.server_to_row[chain.ups_row] @ state.server_power_w
        runtime_s = np.where(chain.ups_battery, chain.ups_energy_j / np.maximum(load_w, 1.0), 0.0)
        budget = float((ix.node_capacity_w[ix.ups_node] * runtime_s).sum())  # W × s, as in the seed
        demand = p.service_dyn_w  # full-level demand
        new = state.service_level_frac.copy()
        priority = 4 - ix.service_rank
        remaining = budget
        for s in np.argsort(-priority, kind="stable").tolist():
            if demand[s] <= remaining:
                new[s] = 1.0  # "ON"
                remaining -= demand[s]
            elif priority[s] > 1:
                new[s] = remaining / max(demand[s], 1e-9)  # "THROTTLED" to the leftover budget
                remaining = 0.0
                break
            else:
                new[s] = 0.0
        return _decision(self.name, state, _levels(state, new, "seed allocatePower"), f"budget {budget:.0f} (W·s)")


class NoMigrationPolicy:
    """Never migrates (the do-nothing baseline).

    >>> NoMigrationPolicy().name
    'no_migration'
    """

    name = "no_migration"

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        """Always skip."""
        return _decision(self.name, state, [], "baseline: never migrates")


class EqualLoadSharingPolicy:
    """Every live PSU of a bus carries an equal share (what most PSUs do by default).

    Args:
        min_change_w: Set-point changes smaller than this are not sent, W.

    >>> from wattwise.model.generate import SiteSpec, generate_site
    >>> from wattwise.decide.index import SiteIndex
    >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=2, servers_per_rack=2, seed=1)))
    >>> st = PowerState(index=ix, server_power_w=ix.server_idle_w, psu_share_frac=[1.0, 0.0, 1.0, 0.0])
    >>> len(EqualLoadSharingPolicy().decide(st, SiteForecast()).actions)
    4
    """

    name = "equal_load_sharing"

    def __init__(self, min_change_w: float = 5.0) -> None:
        self.min_change_w = min_change_w

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        """Equal set-points."""
        ix = state.index
        bus_w, usable, _, _ = bus_inputs(state, forecast)
        out = equal_share_output_w(state, bus_w, usable)
        cur = current_output_w(state, bus_w)
        actions = [
            Action(
                kind=ActionKind.PSU_SETPOINT,
                target_id=ix.psu_ids[i],
                value=float(out[i]),
                previous_value=float(cur[i]),
                reason="equal share",
                not_before_s=state.t_s,
            )
            for i in np.flatnonzero(np.abs(out - cur) >= self.min_change_w).tolist()
        ]
        return _decision(self.name, state, actions, "equal sharing")
