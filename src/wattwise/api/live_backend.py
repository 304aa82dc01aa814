"""``LiveBackend``: the ``ApiBackend`` of a running controller (telemetry, plans, journal).

Every read is served from a snapshot the control loop hands over at the end of each tick
(``Controller.listeners``): the latest accepted values (PDU phase currents among them, one
metric per phase), the planner's last forecast and decisions, the actuator's verdicts. Views
derived from a snapshot are cached until the next tick, so the dashboard's polling costs a
dictionary look-up. The journal is the store's journal (operator actions are written there too), kept in
memory with sequence numbers for paging and refreshed when something was written.

The controller may run on another thread and event loop than the API (the demo does that, so
a long tick never stalls a request): operator approvals run on the controller's loop.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from wattwise.act.actuator import Verdict
from wattwise.act.base import Mode as ActMode
from wattwise.act.base import Phase
from wattwise.api.backend_state import Subscribers
from wattwise.api.live_views import (
    at_risk,
    device_index,
    forecast_views,
    journal_view,
    planned_action,
    trim_decision,
    ups_views,
)
from wattwise.api.live_whatif import MAX_ACTIONS_SHOWN, plan_for_loss
from wattwise.api.schemas import (
    ActionState,
    Actor,
    ControllerStatus,
    DecisionView,
    DevicePage,
    DeviceView,
    Event,
    Forecasts,
    Headroom,
    History,
    HistoryPoint,
    JournalEntry,
    JournalPage,
    MaintenanceView,
    Plan,
    PlannedAction,
    Predictions,
    ReadingView,
    RejectedCount,
    SiteView,
    UpsState,
    WhatIfResult,
)
from wattwise.api.views import headroom_view, node_sides, site_view, utc
from wattwise.config import Mode
from wattwise.control.assemble import Assembly
from wattwise.control.loop import TickReport
from wattwise.decide.base import SiteForecast
from wattwise.errors import ActuationRefused
from wattwise.model.clock import Clock
from wattwise.model.graph import ChainLoads
from wattwise.model.metrics import PHASE_CURRENT_METRICS
from wattwise.model.values import Action, Decision
from wattwise.store import base as store_base
from wattwise.store.base import TimeSeriesStore

logger = logging.getLogger(__name__)

T = TypeVar("T")
Values = dict[tuple[str, str], tuple[float, float]]
BASELINE_NOTE = "baseline: recent peak + 5 % (point = latest, upper = recent per-server peak × 1.05)"
OPERATOR_DECISION = "operator"
EVENT_DECISION = "event"
PLAIN_ROWS = frozenset({OPERATOR_DECISION, EVENT_DECISION})
"""``decision_id`` of journal rows that are not actuator phases (operator actions, power events)."""


@dataclass(frozen=True)
class TickView:
    """What the loop held at the end of one tick (copied, so readers never race the loop)."""

    t_s: float
    values: Values
    decisions: tuple[Decision, ...]
    verdicts: tuple[Verdict, ...]
    forecast: SiteForecast | None
    event: str | None
    errors: tuple[str, ...]
    health: LoopHealth


@dataclass(frozen=True)
class LoopHealth:
    """Validator and error state copied on the loop's thread (status reads it, never the live dicts)."""

    last_good_t_s: dict[str, float]
    rejected: dict[str, int]
    problems: tuple[str, ...]
    pending: tuple[Action, ...]


@dataclass
class _Caches:
    loads: ChainLoads | None = None
    headroom: dict[int, Headroom] = field(default_factory=dict)
    by_device: dict[str, list[tuple[str, float, float]]] | None = None
    ups: tuple[UpsState, ...] | None = None
    forecasts: Forecasts | None = None
    predictions: Predictions | None = None


class LiveBackend:
    """Answers the API from a running :class:`Assembly` and its store; see the module doc.

    Args:
        assembly: The wired controller.
        store: The store the controller writes (history and journal are read from it).
        clock: The controller's clock.
        leader: Name of the leader shown in the status (``"self"`` for one controller).
        controller_loop: The loop the controller runs on, when not the API's.
        running: Returns whether the control loop is running (default: a tick in the last
            three poll periods).
        journal_keep: Journal entries held in memory for paging (the store keeps them all).
    """

    def __init__(
        self,
        assembly: Assembly,
        store: TimeSeriesStore,
        clock: Clock,
        *,
        leader: str = "self",
        controller_loop: asyncio.AbstractEventLoop | None = None,
        running: Callable[[], bool] | None = None,
        journal_keep: int = 50_000,
    ) -> None:
        self.assembly = assembly
        self.store = store
        self.clock = clock
        self.leader = leader
        self.controller_loop = controller_loop
        self.journal_keep = journal_keep
        self.graph = assembly.graph
        self.site_model = assembly.graph.site
        self._running = running
        self._lock = threading.RLock()
        self._subs = Subscribers()
        self._sides = node_sides(self.graph)
        self._site_view = site_view(self.graph)
        self._devices = device_index(self.graph)
        self._base_loads = self.graph.chain_loads(np.zeros(len(self.graph.psu_ids)))
        self._maintenance: set[str] = set()
        self._decided: dict[str, PlannedAction] = {}
        self._recent: dict[str, PlannedAction] = {}
        self._decisions: dict[str, Decision] = {}
        self._journal: list[JournalEntry] = []
        self._journal_keys: set[tuple[str, str, float]] = set()
        self._journal_dirty = True
        self._seq = 0
        self._roles: dict[str, str] = {}
        self._tick: TickView | None = None
        self._caches = _Caches()
        assembly.controller.listeners.append(self._on_tick)

    # ---- the loop's side -----------------------------------------------------------------
    def _on_tick(self, report: TickReport) -> None:
        """Snapshot the loop's state (runs on the controller's thread, once per tick)."""
        c, planner = self.assembly.controller, self.assembly.planner
        view = TickView(
            t_s=report.t_s,
            values=dict(c.latest.values),
            decisions=tuple(c.last_decisions),
            verdicts=report.verdicts,
            forecast=planner.last_forecast,
            event=report.event,
            errors=report.errors,
            health=self._health(),
        )
        if report.event:
            self._write(report.t_s, "controller", "event", report.event.split(":")[0], report.event, EVENT_DECISION)
        with self._lock:
            self._tick, self._caches = view, _Caches()
            if report.decided:
                for d in view.decisions:  # the latest decision of each policy
                    self._decisions.pop(d.policy_name, None)
                    self._decisions[d.policy_name] = trim_decision(d, MAX_ACTIONS_SHOWN, report.t_s)
            for v in report.verdicts:
                self._remember(v)
            self._journal_dirty = self._journal_dirty or bool(report.verdicts)
        summary = report.event or f"{report.accepted} readings"
        self._subs.publish(Event(kind="headroom", t_s=report.t_s, summary=summary))
        if report.decided:
            self._subs.publish(Event(kind="plan", t_s=report.t_s, summary=f"{len(view.decisions)} decisions"))
            self._subs.publish(Event(kind="forecast", t_s=report.t_s))
            self._subs.publish(Event(kind="predictions", t_s=report.t_s))
        if report.verdicts or report.event:
            self._subs.publish(Event(kind="journal", t_s=report.t_s, summary=summary))
        if report.event or report.errors:
            self._subs.publish(Event(kind="status", t_s=report.t_s, summary=summary))

    def _remember(self, v: Verdict) -> None:
        state = _STATE_OF.get(v.phase)
        if state is None:
            return
        self._recent[v.action.command_id] = PlannedAction(
            command_id=v.action.command_id, state=state, action=v.action, note=v.message
        )
        while len(self._recent) > MAX_ACTIONS_SHOWN:
            del self._recent[next(iter(self._recent))]

    def _view(self) -> tuple[TickView | None, _Caches]:
        with self._lock:
            return self._tick, self._caches

    def _values(self) -> Values:
        tick, _ = self._view()
        return tick.values if tick is not None else {}

    # ---- life cycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the event fan-out to the serving loop."""
        self._subs.bind(asyncio.get_running_loop())

    async def stop(self) -> None:
        """End every subscription (the controller is stopped by its owner)."""
        self._subs.close()

    def events(self) -> AsyncIterator[Event]:
        """A new subscription to per-tick updates."""
        return self._subs.subscribe()

    # ---- reads ---------------------------------------------------------------------------
    async def site(self) -> SiteView:
        """Topology."""
        return self._site_view

    def _loads(self) -> tuple[ChainLoads, float]:
        """Chain loads measured now: node power and PDU phase currents from telemetry."""
        tick, caches = self._view()
        if tick is None:
            return self._base_loads, self.clock.now_s()
        if caches.loads is None:
            base = self._base_loads
            load_w = np.array(
                [self._node_power_w(tick.values, n, k) for n, k in zip(base.node_ids, base.node_kind, strict=True)]
            )
            phase_w = np.zeros_like(base.phase_load_w)
            for k, pdu in enumerate(self.site_model.pdus):
                for ph in range(pdu.phases):
                    phase_w[k, ph] = self._phase_current_a(tick.values, pdu.id, ph, pdu.phases) * pdu.voltage_v
            caches.loads = replace(base, load_w=load_w, phase_load_w=phase_w)
        return caches.loads, tick.t_s

    @staticmethod
    def _phase_current_a(values: Values, pdu_id: str, phase: int, phases: int) -> float:
        """Latest current of 0-based ``phase``; a single-phase PDU may report only its total."""
        hit = values.get((pdu_id, PHASE_CURRENT_METRICS[phase]))
        if hit is None and phases == 1:
            hit = values.get((pdu_id, "current_a"))
        return hit[0] if hit is not None else 0.0

    @staticmethod
    def _node_power_w(values: Values, node: str, kind: str) -> float:
        metric = "output_power_w" if kind == "ups" else "power_w"
        hit = values.get((node, metric))
        return hit[0] if hit is not None else 0.0

    async def headroom(self, max_pdus: int) -> Headroom:
        """Headroom from the latest telemetry (cached per tick)."""
        loads, t_s = self._loads()
        _, caches = self._view()
        cached = caches.headroom.get(max_pdus)
        if cached is None:
            source = "telemetry" if self._tick is not None else "no telemetry yet"
            cached = headroom_view(self.graph, loads, self._sides, t_s, source, max_pdus)
            caches.headroom[max_pdus] = cached
        return cached

    async def ups(self) -> tuple[UpsState, ...]:
        """Every UPS with its reported battery state and runtime."""
        loads, _ = self._loads()
        tick, caches = self._view()
        if caches.ups is not None:
            return caches.ups
        caches.ups = ups_views(self.site_model, loads, tick.values if tick is not None else {})
        return caches.ups

    def _by_device(self) -> dict[str, list[tuple[str, float, float]]]:
        tick, caches = self._view()
        if caches.by_device is None:
            grouped: dict[str, list[tuple[str, float, float]]] = {}
            for (dev, metric), (value, t_s) in (tick.values if tick is not None else {}).items():
                grouped.setdefault(dev, []).append((metric, value, t_s))
            caches.by_device = grouped
        return caches.by_device

    async def devices(self, kind: str | None, offset: int, limit: int) -> DevicePage:
        """Devices (optionally of one kind) with their latest accepted readings."""
        ids = [d for d, (k, _) in self._devices.items() if kind is None or k == kind]
        grouped = self._by_device()
        with self._lock:
            maintenance = set(self._maintenance)
        items = []
        for dev in ids[offset : offset + limit]:
            k, parent = self._devices[dev]
            readings = tuple(
                ReadingView(metric=m, value=v, t_s=t, quality="good") for m, v, t in sorted(grouped.get(dev, []))
            )
            items.append(DeviceView(id=dev, kind=k, parent=parent, maintenance=dev in maintenance, readings=readings))
        return DevicePage(total=len(ids), offset=offset, items=tuple(items))

    async def history(
        self, device_id: str, metric: str, start_s: float | None, end_s: float | None, max_points: int
    ) -> History:
        """History of one metric from the store, down-sampled by the store (last hour by default)."""
        if device_id not in self._devices:
            raise KeyError(f"unknown device {device_id!r}")
        hi = end_s if end_s is not None else self.clock.now_s()
        lo = start_s if start_s is not None else hi - 3600.0
        step_s = max((hi - lo) / max(max_points, 1), 1e-3)
        buckets = await asyncio.to_thread(self.store.range, device_id, metric, lo, hi, step_s)
        points = tuple(
            HistoryPoint(t_s=b.t_s + step_s / 2, mean=b.mean_value, min=b.min_value, max=b.max_value, n=b.count)
            for b in buckets[-max_points:]
        )
        raw = sum(p.n for p in points)
        return History(
            device_id=device_id, metric=metric, start_s=lo, end_s=hi, step_s=step_s, points=points, raw_points=raw
        )

    async def forecasts(self) -> Forecasts:
        """The planner's last forecast summed per feed and UPS (point and upper bound)."""
        tick, caches = self._view()
        if caches.forecasts is None:
            if tick is None or tick.forecast is None:
                caches.forecasts = Forecasts(items=(), note="no forecast yet: the controller has not decided yet")
            else:
                items = forecast_views(self.graph, tick.forecast, tick.t_s, BASELINE_NOTE)
                caches.forecasts = Forecasts(items=items, note=BASELINE_NOTE)
        return caches.forecasts

    async def predictions(self) -> Predictions:
        """Devices at risk from the latest readings (rules; most likely first)."""
        tick, caches = self._view()
        if caches.predictions is None:
            items = at_risk(self.site_model, tick.values if tick is not None else {})
            note = "" if items else "nothing at risk in the latest readings (PSU ripple/temperature, UPS, leaks, inlet)"
            caches.predictions = Predictions(items=items, note=note)
        return caches.predictions

    async def plan(self) -> Plan:
        """The latest decisions (with reasons), actions pending approval and recent outcomes."""
        pending = {a.command_id: planned_action(a) for a in self._pending()}
        with self._lock:
            decisions = tuple(self._decisions.values())
            actions = {**pending, **self._recent, **self._decided}
        views = tuple(
            DecisionView(
                decision_id=d.actions[0].decision_id if d.actions else f"{d.policy_name}@{d.t_s:.3f}", decision=d
            )
            for d in reversed(decisions)
        )
        period_s = self.assembly.controller.decide_period_s
        note = "" if decisions else f"no decisions yet: the controller decides every {period_s:g} s and on events"
        t_s = max((d.t_s for d in decisions), default=None)
        return Plan(t_s=t_s, decisions=views, actions=tuple(actions.values()), note=note)

    def _sync_journal(self) -> None:
        """Pull journal entries written since the last sync (a window back, deduplicated)."""
        with self._lock:
            if not self._journal_dirty:
                return
            self._journal_dirty = False
            since_s = self._journal[-1].t_s - 600.0 if self._journal else 0.0
        rows = self.store.journal(since_s, 1_000_000)
        with self._lock:
            for e in rows:
                key = (e.command_id, str(e.phase), e.t_s)
                if key in self._journal_keys:
                    continue
                self._journal_keys.add(key)
                self._seq += 1
                self._journal.append(journal_view(e, self._seq, self._roles, PLAIN_ROWS))
            if len(self._journal) > self.journal_keep:
                # Older entries stay in the store; memory holds the newest ``journal_keep``.
                del self._journal[: len(self._journal) - self.journal_keep]
                cutoff_s = self._journal[0].t_s - 600.0
                self._journal_keys = {k for k in self._journal_keys if k[2] >= cutoff_s}

    async def journal(self, limit: int, before_seq: int | None) -> JournalPage:
        """Store journal, newest first, paged by sequence number (``total``: entries so far)."""
        await asyncio.to_thread(self._sync_journal)
        with self._lock:
            end = len(self._journal)
            if before_seq is not None:
                end = bisect.bisect_left([e.seq for e in self._journal], before_seq)
            items = tuple(reversed(self._journal[max(end - limit, 0) : end])) if limit > 0 else ()
            return JournalPage(items=items, total=self._seq)

    def _health(self) -> LoopHealth:
        """Copy what status needs from dicts the loop mutates (call on the loop's thread, or before it runs)."""
        c, validator = self.assembly.controller, self.assembly.pipeline.validator
        rejected: dict[str, int] = {}
        for (reason, _), n in list(validator.stats.rejected.items()):
            rejected[reason.name.lower()] = rejected.get(reason.name.lower(), 0) + n
        problems = [f"driver {k}: {v}" for k, v in c.driver_errors.items()]
        problems += [f"policy {k}: {v}" for k, v in self.assembly.planner.policy_errors.items()]
        if c.last_event:
            problems.append(f"last event: {c.last_event}")
        pending = tuple(self.assembly.actuator.pending)
        return LoopHealth(dict(validator.last_good_t_s()), rejected, tuple(problems), pending)

    def _pending(self) -> tuple[Action, ...]:
        tick, _ = self._view()
        return tick.health.pending if tick is not None else tuple(self.assembly.actuator.pending)

    async def status(self) -> ControllerStatus:
        """Mode, leadership, staleness and rejected readings as of the last tick."""
        now_s = self.clock.now_s()
        tick, _ = self._view()
        c, a = self.assembly.controller, self.assembly.actuator
        health = tick.health if tick is not None else self._health()
        seen = health.last_good_t_s
        ages = [now_s - t for d, t in seen.items() if d in self._devices]
        never = sum(1 for d in self._devices if d not in seen)
        stale_after_s = 3.0 * c.poll_period_s
        rejected, problems = health.rejected, health.problems
        with self._lock:
            maintenance = tuple(sorted(self._maintenance))
        return ControllerStatus(
            site_id=self.site_model.id,
            running=self._is_running(tick, now_s),
            mode=_api_mode(a.mode),
            leader=self.leader if c.is_leader() else None,
            is_leader=c.is_leader(),
            fencing_token=a.token(),
            t_s=now_s,
            at=utc(now_s),
            last_cycle_t_s=tick.t_s if tick is not None else None,
            staleness_s=max(ages) if ages else None,
            stale_devices=sum(1 for age in ages if age > stale_after_s) + never,
            rejected_readings=tuple(RejectedCount(reason=r, count=n) for r, n in sorted(rejected.items())),
            pending_actions=len(self._pending()),
            maintenance=maintenance,
            message="; ".join(problems),
        )

    def _is_running(self, tick: TickView | None, now_s: float) -> bool:
        if self._running is not None:
            return self._running()
        return tick is not None and now_s - tick.t_s <= 3.0 * self.assembly.controller.poll_period_s

    # ---- mutations -----------------------------------------------------------------------
    def _record(self, actor: Actor, kind: str, target: str, detail: str) -> None:
        """Journal an operator action in the store (the one journal), then tell subscribers."""
        t_s = self.clock.now_s()
        with self._lock:
            self._roles[actor.name] = actor.role.value
        self._write(t_s, actor.name, kind, target, detail, OPERATOR_DECISION)
        logger.info(
            "journal site=%s %s by %s (%s): %s %s", self.site_model.id, kind, actor.name, actor.role, target, detail
        )
        self._subs.publish(Event(kind="journal", t_s=t_s, summary=f"{kind} {target}"))

    def _write(self, t_s: float, actor: str, kind: str, target: str, detail: str, decision_id: str) -> None:
        entry = store_base.JournalEntry(
            command_id=f"{decision_id}-{uuid.uuid4().hex[:12]}",
            t_s=t_s,
            phase="acked",
            kind=kind,
            target_id=target,
            reason=detail,
            decision_id=decision_id,
            actor=actor,
        )
        self.store.append_journal(entry)
        with self._lock:
            self._journal_dirty = True

    async def set_mode(self, mode: Mode, actor: Actor, note: str) -> ControllerStatus:
        """Arm or disarm the actuator (takes effect at the next decision)."""
        actuator = self.assembly.actuator
        old = actuator.mode
        actuator.mode = ActMode(mode)
        self._record(actor, "mode", self.site_model.id, f"{old.value} -> {mode}" + (f": {note}" if note else ""))
        self._subs.publish(Event(kind="status", t_s=self.clock.now_s(), summary=f"mode {mode}"))
        return await self.status()

    async def _on_controller_loop(self, coro: Coroutine[object, object, T]) -> T:
        loop = self.controller_loop
        if loop is None or loop is asyncio.get_running_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    async def _is_pending(self, command_id: str) -> bool:
        return any(a.command_id == command_id for a in self.assembly.actuator.pending)

    async def _deny(self, command_id: str, actor: str) -> Verdict:
        return self.assembly.actuator.deny(command_id, actor)

    async def decide_action(self, command_id: str, approve: bool, actor: Actor, note: str) -> PlannedAction:
        """Approve (send, interlocks checked again) or deny a pending action."""
        actuator = self.assembly.actuator
        if not await self._on_controller_loop(self._is_pending(command_id)):
            with self._lock:
                done = self._decided.get(command_id) or self._recent.get(command_id)
            if done is None:
                raise KeyError(f"no planned action {command_id!r}")
            raise ActuationRefused(f"action is {done.state.value}, not pending", command_id=command_id)
        with self._lock:
            self._roles[actor.name] = actor.role.value
        if approve:
            verdict = await self._on_controller_loop(actuator.approve(command_id, actor.name))
        else:
            verdict = await self._on_controller_loop(self._deny(command_id, actor.name))
        state = ActionState.DENIED if not approve else _STATE_OF.get(verdict.phase, ActionState.APPROVED)
        done = PlannedAction(
            command_id=command_id,
            state=state,
            action=verdict.action,
            decided_by=actor.name,
            note=note or verdict.message,
        )
        with self._lock:
            self._decided[command_id] = done
            self._journal_dirty = True
        self._subs.publish(
            Event(kind="plan", t_s=self.clock.now_s(), summary=f"{'approve' if approve else 'deny'} {command_id}")
        )
        self._subs.publish(Event(kind="journal", t_s=self.clock.now_s()))
        return done

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
        """Chain loads after the loss, and the decision wattwise WOULD make (nothing is sent)."""
        unknown = sorted(set(lose_ids) - set(self.graph.node_ids))
        if unknown:
            raise KeyError(f"not a feed, ATS, UPS or PDU: {', '.join(unknown)}")
        result = await asyncio.to_thread(
            plan_for_loss, self.assembly.planner, self._sides, self._values(), lose_ids, self.clock.now_s()
        )
        self._record(actor, "what-if", ",".join(lose_ids), result.summary)
        return result

    async def journal_api_event(self, actor: Actor, kind: str, target: str, detail: str) -> None:
        """Journal a mutation the API did itself (token management)."""
        self._record(actor, kind, target, detail)


_STATE_OF = {
    Phase.PENDING: ActionState.PENDING,
    Phase.SENT: ActionState.EXECUTED,
    Phase.ACKED: ActionState.EXECUTED,
    Phase.FAILED: ActionState.FAILED,
    Phase.REFUSED: ActionState.FAILED,
    Phase.DENIED: ActionState.DENIED,
    Phase.APPROVED: ActionState.APPROVED,
}


def _api_mode(mode: ActMode) -> Mode:
    if mode is ActMode.ARMED:
        return "armed"
    if mode is ActMode.DRY_RUN:
        return "dry-run"
    return "observe"
