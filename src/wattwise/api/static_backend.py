"""``StaticBackend``: an ``ApiBackend`` from the site model alone, with clear empty states.

Loads are the nominal model (each server at half its span above idle, PSUs sharing equally),
optionally animated (``animate=True``) by a seeded slow wave per server so that a dashboard
or a test can watch values change; the ``source`` field says so. Forecasts, predictions and
plans are empty with a note until something publishes them (``publish_*``, ``propose``):
the controller's adapter is the real backend. Thread-safe: tests call ``propose`` from their
own thread while the server's event loop serves requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator

import numpy as np

from wattwise.api.backend_state import Journal, Subscribers, downsample
from wattwise.api.schemas import (
    ActionState,
    Actor,
    AtRisk,
    ControllerStatus,
    DecisionView,
    DevicePage,
    DeviceView,
    Event,
    Forecasts,
    ForecastView,
    Headroom,
    History,
    JournalPage,
    MaintenanceView,
    Plan,
    PlannedAction,
    Predictions,
    ReadingView,
    SiteView,
    UpsState,
    WhatIfResult,
)
from wattwise.api.views import headroom_view, node_loads, node_sides, site_view, ups_states, utc
from wattwise.api.whatif import lose
from wattwise.config import Mode
from wattwise.errors import ActuationRefused
from wattwise.model.clock import Clock, WallClock
from wattwise.model.graph import ChainLoads, SiteGraph
from wattwise.model.site import Site
from wattwise.model.values import Decision

logger = logging.getLogger(__name__)

NO_FORECASTS = "no forecasts yet: the prediction engine is not wired to this server"
NO_PREDICTIONS = "no predictions yet: the failure predictors are not wired to this server"
NO_PLAN = "no plan yet: the controller is not running"


class StaticBackend:
    """Answers the API from a :class:`Site` and a :class:`SiteGraph`; see the module doc."""

    def __init__(
        self,
        site: Site,
        *,
        graph: SiteGraph | None = None,
        clock: Clock | None = None,
        animate: bool = False,
        tick_s: float = 1.0,
        period_s: float = 60.0,
        seed: int = 0,
        mode: Mode = "observe",
        history_len: int = 3600,
    ) -> None:
        self.site_model = site
        self.graph = graph or SiteGraph(site)
        self.clock: Clock = clock or WallClock()
        self.animate = animate
        self.tick_s = tick_s
        self.period_s = period_s
        self.seed = seed
        self._lock = threading.RLock()
        self._mode: Mode = mode
        self._maintenance: set[str] = set()
        self._journal = Journal()
        self._subs = Subscribers()
        self._actions: dict[str, PlannedAction] = {}
        self._decisions: list[Decision] = []
        self._forecasts: tuple[ForecastView, ...] = ()
        self._at_risk: tuple[AtRisk, ...] = ()
        self._sides = node_sides(self.graph)
        self._site_view = site_view(self.graph)
        rng = np.random.default_rng(seed)
        self._phase = rng.uniform(0.0, 2.0 * np.pi, len(site.servers))
        self._history: deque[tuple[float, np.ndarray]] = deque(maxlen=history_len)
        self._devices = self._device_index()
        self._loads_t_s = float("-inf")
        self._loads: ChainLoads = self._compute(self.clock.now_s())
        self._task: asyncio.Task[None] | None = None
        self._headroom_cache: dict[tuple[float, int], Headroom] = {}

    # ---- model ---------------------------------------------------------------------------
    def _server_w(self, t_s: float) -> np.ndarray:
        g = self.graph
        level = np.full(len(self._phase), 0.5)
        if self.animate:
            level = 0.5 + 0.3 * np.sin(2.0 * np.pi * t_s / self.period_s + self._phase)
        return np.asarray(g.server_idle_w + level * (g.server_peak_w - g.server_idle_w), dtype=np.float64)

    def psu_input_w(self, t_s: float) -> np.ndarray:
        """PSU input power at ``t_s`` under the nominal (or animated) model, W."""
        return self.graph.equal_share_psu_input_w(self._server_w(t_s))

    def _compute(self, t_s: float) -> ChainLoads:
        loads = self.graph.chain_loads(self.psu_input_w(t_s))
        with self._lock:
            self._loads, self._loads_t_s = loads, t_s
            self._history.append((t_s, loads.load_w.copy()))
        return loads

    def _current(self) -> tuple[ChainLoads, float]:
        now_s = self.clock.now_s()
        with self._lock:
            fresh = not self.animate or now_s - self._loads_t_s < self.tick_s
            if fresh:
                return self._loads, self._loads_t_s
        return self._compute(now_s), now_s

    @property
    def source(self) -> str:
        """Where the loads come from, as shown to operators."""
        return "nominal model, simulated variation" if self.animate else "nominal model"

    def _device_index(self) -> dict[str, tuple[str, str | None]]:
        g = self.graph
        out: dict[str, tuple[str, str | None]] = {}
        for node, kind, parent in zip(g.node_ids, g.node_kind, g.node_parent, strict=True):
            out[node] = (kind, g.node_ids[int(parent)] if parent >= 0 else None)
        for r in self.site_model.racks:
            out[r.id] = ("rack", r.racklet)
        for s in self.site_model.servers:
            out[s.id] = ("server", s.rack)
        return out

    # ---- life cycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start the tick task (when animated) on the running loop."""
        self._subs.bind(asyncio.get_running_loop())
        if self.animate and self._task is None:
            self._task = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        """Stop ticking and end every subscription."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._subs.close()

    async def _tick_forever(self) -> None:
        # The push cadence is real time (it paces the dashboard); the values follow ``clock``,
        # so a SimClock advanced elsewhere drives what is shown without a busy loop here.
        while True:
            await asyncio.sleep(self.tick_s)
            now_s = self.clock.now_s()
            self._compute(now_s)
            self._subs.publish(Event(kind="headroom", t_s=now_s, summary=self.source))

    def events(self) -> AsyncIterator[Event]:
        """A new subscription to live updates."""
        return self._subs.subscribe()

    # ---- reads ---------------------------------------------------------------------------
    async def site(self) -> SiteView:
        """Topology."""
        return self._site_view

    async def headroom(self, max_pdus: int) -> Headroom:
        """Headroom now (the same object until the loads change, so the API can reuse its JSON)."""
        loads, t_s = self._current()
        key = (t_s, max_pdus)
        cached = self._headroom_cache.get(key)
        if cached is None:
            cached = headroom_view(self.graph, loads, self._sides, t_s, self.source, max_pdus)
            with self._lock:
                self._headroom_cache = {k: v for k, v in self._headroom_cache.items() if k[0] == t_s}
                self._headroom_cache[key] = cached
        return cached

    async def ups(self) -> tuple[UpsState, ...]:
        """UPS views (runtime estimated from the model)."""
        loads, _ = self._current()
        return ups_states(self.graph, loads)

    async def devices(self, kind: str | None, offset: int, limit: int) -> DevicePage:
        """Devices with their modelled latest power."""
        loads, t_s = self._current()
        ids = [d for d, (k, _) in self._devices.items() if kind is None or k == kind]
        server_w = self._server_w(t_s)
        items = []
        for dev in ids[offset : offset + limit]:
            k, parent = self._devices[dev]
            items.append(
                DeviceView(
                    id=dev,
                    kind=k,
                    parent=parent,
                    maintenance=dev in self._maintenance,
                    readings=self._readings(dev, k, loads, server_w, t_s),
                )
            )
        return DevicePage(total=len(ids), offset=offset, items=tuple(items))

    def _readings(
        self, dev: str, kind: str, loads: ChainLoads, server_w: np.ndarray, t_s: float
    ) -> tuple[ReadingView, ...]:
        # Modelled values, not measurements: quality "uncertain" says so.
        if kind == "server":
            value = float(server_w[self.graph.server_index[dev]])
        elif kind == "rack":
            return ()
        else:
            value = loads.of(dev)[0]
        return (ReadingView(metric="power_w", value=value, t_s=t_s, quality="uncertain"),)

    async def history(
        self, device_id: str, metric: str, start_s: float | None, end_s: float | None, max_points: int
    ) -> History:
        """Modelled node power history kept since start (nodes and ``power_w`` only)."""
        if device_id not in self._devices:
            raise KeyError(f"unknown device {device_id!r}")
        with self._lock:
            rows = list(self._history)
        idx = self.graph.node_index.get(device_id)
        t_s = np.array([t for t, _ in rows], dtype=np.float64)
        if idx is None or metric != "power_w" or not rows:
            values = np.zeros(0)
            t_s = np.zeros(0)
        else:
            values = np.array([w[idx] for _, w in rows], dtype=np.float64)
        return downsample(device_id, metric, t_s, values, start_s, end_s, max_points)

    async def forecasts(self) -> Forecasts:
        """Published forecasts, or an empty list with a note."""
        with self._lock:
            items = self._forecasts
        return Forecasts(items=items, note="" if items else NO_FORECASTS)

    async def predictions(self) -> Predictions:
        """Published at-risk devices, or an empty list with a note."""
        with self._lock:
            items = self._at_risk
        return Predictions(items=items, note="" if items else NO_PREDICTIONS)

    async def plan(self) -> Plan:
        """Decisions and actions proposed so far."""
        with self._lock:
            decisions, actions = list(self._decisions), tuple(self._actions.values())
        views = tuple(_decision_view(d) for d in decisions)
        t_s = max((d.t_s for d in decisions), default=None)
        return Plan(t_s=t_s, decisions=views, actions=actions, note="" if decisions else NO_PLAN)

    async def journal(self, limit: int, before_seq: int | None) -> JournalPage:
        """Journal, newest first."""
        return self._journal.page(limit, before_seq)

    async def status(self) -> ControllerStatus:
        """Static status: the controller is not running; mode and maintenance are kept."""
        now_s = self.clock.now_s()
        with self._lock:
            pending = sum(1 for a in self._actions.values() if a.state is ActionState.PENDING)
            maintenance = tuple(sorted(self._maintenance))
            mode = self._mode
        return ControllerStatus(
            site_id=self.site_model.id,
            running=False,
            mode=mode,
            leader=None,
            is_leader=False,
            fencing_token=None,
            t_s=now_s,
            at=utc(now_s),
            last_cycle_t_s=None,
            staleness_s=None,
            stale_devices=0,
            rejected_readings=(),
            pending_actions=pending,
            maintenance=maintenance,
            message="controller not running: this server answers from the site model alone",
        )

    # ---- mutations -----------------------------------------------------------------------
    async def set_mode(self, mode: Mode, actor: Actor, note: str) -> ControllerStatus:
        """Record the mode (nothing executes without a controller)."""
        with self._lock:
            old, self._mode = self._mode, mode
        self._record(actor, "mode", self.site_model.id, f"{old} -> {mode}" + (f": {note}" if note else ""))
        self._subs.publish(Event(kind="status", t_s=self.clock.now_s(), summary=f"mode {mode}"))
        return await self.status()

    async def decide_action(self, command_id: str, approve: bool, actor: Actor, note: str) -> PlannedAction:
        """Approve or deny a pending action (no controller: approval executes nothing)."""
        with self._lock:
            current = self._actions.get(command_id)
            if current is None:
                raise KeyError(f"no planned action {command_id!r}")
            if current.state is not ActionState.PENDING:
                raise ActuationRefused(f"action is {current.state.value}, not pending", command_id=command_id)
            state = ActionState.APPROVED if approve else ActionState.DENIED
            updated = current.model_copy(update={"state": state, "decided_by": actor.name, "note": note})
            self._actions[command_id] = updated
        verb = "approve" if approve else "deny"
        detail = f"{updated.action.kind.value} {updated.action.target_id}" + (f": {note}" if note else "")
        self._record(actor, verb, updated.action.target_id, detail, command_id)
        self._subs.publish(Event(kind="plan", t_s=self.clock.now_s(), summary=f"{verb} {command_id}"))
        return updated

    async def set_maintenance(self, device_id: str, on: bool, actor: Actor, note: str) -> MaintenanceView:
        """Mark a device as in (or out of) maintenance."""
        if device_id not in self._devices:
            raise KeyError(f"unknown device {device_id!r}")
        with self._lock:
            (self._maintenance.add if on else self._maintenance.discard)(device_id)
        self._record(actor, "maintenance", device_id, ("on" if on else "off") + (f": {note}" if note else ""))
        self._subs.publish(Event(kind="status", t_s=self.clock.now_s(), summary=f"maintenance {device_id}"))
        return MaintenanceView(device_id=device_id, maintenance=on)

    async def what_if(self, lose_ids: tuple[str, ...], actor: Actor) -> WhatIfResult:
        """Sustained chain loads after losing ``lose_ids`` now (no policy runs here)."""
        t_s = self.clock.now_s()
        outcome = lose(self.graph, self.psu_input_w(t_s), frozenset(lose_ids))
        loads = outcome.loads
        over = [n for n, w, c in zip(loads.node_ids, loads.load_w, loads.capacity_w, strict=True) if w > c]
        over += [
            f"{p.id}/L{ph + 1}"
            for k, p in enumerate(self.site_model.pdus)
            for ph in range(p.phases)
            if loads.phase_load_w[k, ph] > loads.phase_capacity_w[k, ph]
        ]
        summary = _what_if_summary(lose_ids, outcome.ats_source, outcome.ups_bridge_s, over, outcome.servers_unpowered)
        self._record(actor, "what-if", ",".join(lose_ids), summary)
        return WhatIfResult(
            lose=lose_ids,
            t_s=t_s,
            nodes=node_loads(loads, self._sides, [i for i, k in enumerate(loads.node_kind) if k != "pdu"]),
            overloaded=tuple(over),
            servers_unpowered=outcome.servers_unpowered,
            decision=None,
            summary=summary,
        )

    async def journal_api_event(self, actor: Actor, kind: str, target: str, detail: str) -> None:
        """Journal a mutation the API did itself."""
        self._record(actor, kind, target, detail)

    def _record(self, actor: Actor, kind: str, target: str, detail: str, command_id: str | None = None) -> None:
        t_s = self.clock.now_s()
        self._journal.add(t_s, actor, kind, target, detail, command_id)
        logger.info(
            "journal site=%s %s by %s (%s): %s %s", self.site_model.id, kind, actor.name, actor.role, target, detail
        )
        self._subs.publish(Event(kind="journal", t_s=t_s, summary=f"{kind} {target}"))

    # ---- publishing (tests, demos, adapters-in-progress) ---------------------------------
    def propose(self, decision: Decision) -> tuple[str, ...]:
        """Add a decision; its actions wait for an operator. Returns their command ids."""
        with self._lock:
            self._decisions = [*self._decisions[-19:], decision]
            ids = []
            for action in decision.actions:
                self._actions.setdefault(
                    action.command_id,
                    PlannedAction(command_id=action.command_id, state=ActionState.PENDING, action=action),
                )
                ids.append(action.command_id)
        self._subs.publish(Event(kind="plan", t_s=self.clock.now_s(), summary=decision.policy_name))
        return tuple(ids)

    def publish_forecasts(self, items: tuple[ForecastView, ...]) -> None:
        """Replace the current forecasts."""
        with self._lock:
            self._forecasts = items
        self._subs.publish(Event(kind="forecast", t_s=self.clock.now_s()))

    def publish_predictions(self, items: tuple[AtRisk, ...]) -> None:
        """Replace the current at-risk list (sorted most likely first)."""
        with self._lock:
            self._at_risk = tuple(sorted(items, key=lambda a: -a.probability_frac))
        self._subs.publish(Event(kind="predictions", t_s=self.clock.now_s()))


def _decision_view(decision: Decision) -> DecisionView:
    key = f"{decision.policy_name}|{decision.t_s}|{len(decision.actions)}"
    return DecisionView(decision_id=hashlib.sha256(key.encode()).hexdigest()[:12], decision=decision)


def _what_if_summary(
    lost: tuple[str, ...], transfers: dict[str, str], bridge: dict[str, float], over: list[str], unpowered: int
) -> str:
    parts = [f"lose {', '.join(lost)}:"]
    if transfers:
        parts.append("ATS transfer " + ", ".join(f"{a}→{s}" for a, s in sorted(transfers.items())) + ";")
    if len(bridge) > 3:
        shortest = min(bridge, key=lambda u: bridge[u])
        parts.append(f"{len(bridge)} UPS on battery, shortest {shortest} {bridge[shortest] / 60:.0f} min;")
    elif bridge:
        parts.append("on battery " + ", ".join(f"{u} {s / 60:.0f} min" for u, s in sorted(bridge.items())) + ";")
    parts.append(f"{len(over)} overloaded" + (f" ({', '.join(over[:5])})" if over else "") + ";")
    parts.append(f"{unpowered} servers unpowered")
    return " ".join(parts)
