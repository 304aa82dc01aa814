"""Predict and decide for the loop: latest readings → state and forecasts → decisions.

The planner builds a :class:`~wattwise.decide.base.PowerState` from the latest accepted
readings, a forecast from a baseline (per-server recent peak with a safety margin, until a
learned forecaster wins its backtest), runs the policies in a fixed order (power-event
allocation first, then PSU load sharing), and stamps every action with a decision id so a
retried decision is idempotent and a new one is not mistaken for an old one.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from wattwise.act.actuator import Verdict
from wattwise.act.base import Phase
from wattwise.act.interlocks import InterlockContext
from wattwise.control.loop import LatestValues
from wattwise.control.models import NodeForecasts
from wattwise.control.processors import ProcessorWatch
from wattwise.control.read_levels import ReadLevels
from wattwise.decide.base import EfficiencyCurves, Policy, PowerState, SiteForecast
from wattwise.decide.event_shift import DisruptionShiftPolicy
from wattwise.decide.index import SiteIndex
from wattwise.model.graph import SiteGraph
from wattwise.model.values import ActionKind, Decision

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


def _stamped(decision: Decision, policy_name: str, decision_id: str) -> Decision:
    """``decision`` with every action carrying ``<policy>@<decision id>`` (idempotent retries)."""
    actions = tuple(a.model_copy(update={"decision_id": f"{policy_name}@{decision_id}"}) for a in decision.actions)
    return decision.model_copy(update={"actions": actions})


@dataclass
class PeakForecaster:
    """Baseline server-power forecast: point = latest, upper = recent peak × (1 + margin).

    Args:
        window: Number of recent states kept per server.
        margin_frac: Safety margin over the recent peak.
    """

    window: int = 60
    margin_frac: float = 0.05
    _history: deque[FloatArray] = field(default_factory=deque)

    def observe(self, server_power_w: FloatArray, restart: npt.NDArray[np.bool_] | None = None) -> SiteForecast:
        """Add a state and return the forecast it implies.

        ``restart`` marks servers whose earlier peaks no longer apply (their services' levels
        changed since): their history starts again from this state.
        """
        if restart is not None and restart.any():
            for past in self._history:
                past[restart] = server_power_w[restart]
        self._history.append(server_power_w.copy())
        while len(self._history) > self.window:
            self._history.popleft()
        peak = np.max(np.stack(self._history), axis=0)
        return SiteForecast(server_power_point_w=server_power_w, server_power_upper_w=peak * (1.0 + self.margin_frac))


class PolicyPlanner:
    """Runs the decision policies on the latest state.

    Args:
        graph: The site graph (interlock context, headroom).
        index: The same site as arrays for policies.
        policies: Policies run in order every decision.
        curves: PSU efficiency curves (real data) for load sharing and the state.
        forecaster: Baseline forecaster.
        periods_s: Policy name → least seconds between its runs (others run every decision;
            every policy runs at once on an event).
        processors: Event processors' heartbeat detectors and partition owners (``None``:
            no processor shifting).
        shift_policy: The event-processor shifting policy, run after the power policies on
            every decision when ``processors`` is given.
        node_forecasts: Learned per-node load forecasters from the model registry
            (``SiteForecast.node_load_upper_w``); ``None``: the baseline alone.
    """

    def __init__(
        self,
        graph: SiteGraph,
        index: SiteIndex,
        policies: Sequence[Policy[PowerState]],
        curves: EfficiencyCurves | None = None,
        forecaster: PeakForecaster | None = None,
        periods_s: dict[str, float] | None = None,
        processors: ProcessorWatch | None = None,
        shift_policy: DisruptionShiftPolicy | None = None,
        node_forecasts: NodeForecasts | None = None,
    ) -> None:
        self.graph = graph
        self.node_forecasts = node_forecasts
        self.processors = processors
        self.shift_policy = shift_policy or (DisruptionShiftPolicy() if processors is not None else None)
        self.index = index
        source = {f.id: f.source for f in graph.site.feeds}
        feed_ids = [n for n, k in zip(index.node_ids, index.node_kind.tolist(), strict=True) if k == 0]
        self._grid_feed = np.array([source.get(f) == "grid" for f in feed_ids], dtype=bool)
        """Utility feeds: a standby generator reading unavailable is not a power event."""
        self.policies = tuple(policies)
        self.curves = curves
        self.forecaster = forecaster or PeakForecaster()
        self.last_state: PowerState | None = None
        self.last_forecast: SiteForecast | None = None
        self.policy_errors: dict[str, str] = {}
        self.periods_s = dict(periods_s or {})
        self._last_run_s: dict[str, float] = {}
        self.read_levels = ReadLevels(index)
        """The service levels each server's power reading was taken at."""
        self._wl_pos = {w: i for i, w in enumerate(index.wl_ids)}
        self._srv_pos = {s: i for i, s in enumerate(index.server_ids)}

    def observe_verdicts(self, verdicts: Sequence[Verdict]) -> None:
        """Track workload placement: a migration acknowledged moves the workload in the index.

        Readings carry power, not placement; without this the policies would plan from the
        site file's placement and propose the same move again on every decision. (An
        orchestrator that reports placement would feed the same index.)
        """
        moved = [
            (self._wl_pos[v.action.target_id], self._srv_pos[v.action.dest_id])
            for v in verdicts
            if v.phase is Phase.ACKED
            and v.action.kind is ActionKind.WORKLOAD_MIGRATE
            and v.action.target_id in self._wl_pos
            and v.action.dest_id in self._srv_pos
        ]
        if self.processors is not None:
            self.processors.observe_verdicts(verdicts)
        self.read_levels.acknowledged(verdicts)
        if not moved:
            return
        wl_server = self.index.wl_server.copy()
        for w, srv in moved:
            wl_server[w] = srv
        self.index = replace(self.index, wl_server=wl_server)
        logger.info("placement: %d workload(s) moved", len(moved))

    def state(self, latest: LatestValues, now_s: float) -> PowerState:
        """The policies' view of the site now."""
        values = {k: v for k, (v, _) in latest.values.items()}
        state = PowerState.from_readings(self.index, values, t_s=now_s)
        return state.with_(efficiency=self.curves) if self.curves is not None else state

    def plan(self, latest: LatestValues, now_s: float, event: str | None) -> tuple[list[Decision], InterlockContext]:
        """Decisions of every policy, with the interlock context they were made in.

        With no reading at all yet, nothing is decided: a state built from defaults alone
        (every feed up, servers idle) is not the site.
        """
        if not latest.values:
            logger.info("no readings yet: not deciding")
            return [], InterlockContext(t_s=now_s)
        state = self.state(latest, now_s)
        assert state.service_level_frac is not None
        read_s = np.array([latest.values.get((sid, "power_w"), (0.0, -np.inf))[1] for sid in self.index.server_ids])
        at_read, restart = self.read_levels.levels(read_s, state.service_level_frac, self.index.wl_server, now_s)
        state = state.with_(workload_read_level_frac=at_read)
        base = self.forecaster.observe(state.server_power_w, restart)
        forecast = self._with_node_loads(base, latest, now_s)
        self.last_state, self.last_forecast = state, forecast
        decision_id = f"{now_s:.3f}"
        decisions: list[Decision] = []
        for policy in self.policies:
            period_s = self.periods_s.get(policy.name, 0.0)
            if event is None and now_s - self._last_run_s.get(policy.name, float("-inf")) < period_s:
                continue
            self._last_run_s[policy.name] = now_s
            try:
                d = policy.decide(state, forecast)
            except Exception as err:  # one broken policy must not silence the others
                logger.exception("policy %s failed", policy.name)
                self.policy_errors[policy.name] = f"{type(err).__name__}: {err}"
                continue
            self.policy_errors.pop(policy.name, None)
            decisions.append(_stamped(d, policy.name, decision_id))
        shift = self._shift(latest, now_s, decision_id)
        if shift is not None:
            decisions.append(shift)
        self.read_levels.expect(decisions, np.asarray(state.service_level_frac), now_s)
        return decisions, self.context(state, latest, now_s, event)

    def _with_node_loads(self, forecast: SiteForecast, latest: LatestValues, now_s: float) -> SiteForecast:
        """The baseline forecast with the learned node load bounds (a failing model is a status, never a stop)."""
        if self.node_forecasts is None:
            return forecast
        for key in [k for k in self.policy_errors if k.startswith("forecast ")]:
            del self.policy_errors[key]
        try:
            upper_w = self.node_forecasts.observe(latest, now_s, forecast.horizon_s)
        except Exception as err:  # the baseline still plans
            logger.exception("node forecasts failed")
            self.policy_errors["forecast nodes"] = f"{type(err).__name__}: {err}"
            return forecast
        self.policy_errors.update({f"forecast {n}": msg for n, msg in self.node_forecasts.problems().items()})
        if bool(np.isnan(upper_w).all()):
            return forecast  # no node has a usable model: the baseline forecast as it was
        return replace(forecast, node_load_upper_w=upper_w)

    def _shift(self, latest: LatestValues, now_s: float, decision_id: str) -> Decision | None:
        """Event-processor shifting on the processors' own state (never stops the power policies)."""
        if self.processors is None or self.shift_policy is None:
            return None
        name = self.shift_policy.name
        try:
            self.processors.observe(latest)
            pstate = self.processors.state(latest, now_s)
            forecast = SiteForecast(processor_failure_prob=self.processors.failure_prob(now_s))
            d = self.shift_policy.decide(pstate, forecast)
        except Exception as err:  # a broken detector must not silence the power policies
            logger.exception("policy %s failed", name)
            self.policy_errors[name] = f"{type(err).__name__}: {err}"
            return None
        self.policy_errors.pop(name, None)
        return _stamped(d, name, decision_id)

    def context(self, state: PowerState, latest: LatestValues, now_s: float, event: str | None) -> InterlockContext:
        """Headroom per chain node and power per service, for the interlocks."""
        loads = self.graph.chain_loads(self.graph.equal_share_psu_input_w(state.server_power_w))
        headroom = dict(zip(loads.node_ids, loads.headroom_w.tolist(), strict=True))
        ix = self.index
        server_w = state.server_power_w
        cpu_on_server = np.bincount(ix.wl_server, weights=ix.wl_cpu_frac, minlength=len(ix.server_ids))
        share = ix.wl_cpu_frac / np.maximum(cpu_on_server[ix.wl_server], 1e-9)
        svc_w = np.bincount(ix.wl_service, weights=share * server_w[ix.wl_server], minlength=len(ix.service_ids))
        outlets_off = frozenset(o for o in self.graph.outlet_ids if latest.get(o, "outlet_on", 1.0) == 0.0)
        on_battery = state.ups_on_battery if state.ups_on_battery is not None else np.zeros(0, dtype=bool)
        feeds = state.feed_available if state.feed_available is not None else np.ones(len(self._grid_feed), bool)
        feeds_ok = feeds[self._grid_feed]
        power_event = bool(on_battery.any()) or not bool(feeds_ok.all()) or event is not None
        return InterlockContext(
            t_s=now_s,
            headroom_w=headroom,
            service_power_w=dict(zip(ix.service_ids, svc_w.tolist(), strict=True)),
            outlets_off=outlets_off,
            power_event=power_event,
            # Down = shed, or not reported running yet (a restore acknowledged is not a service up).
            services_down=frozenset(
                sid
                for sid, level in zip(ix.service_ids, np.asarray(state.service_level_frac).tolist(), strict=True)
                if level <= 0.0 or latest.get(sid, "available", 1.0) == 0.0
            ),
        )
