"""The control loop: read → validate and store → predict → decide → act, on a Clock.

Devices are polled every ``poll_period_s``; a decision runs every ``decide_period_s``, or at
once when a reading shows an event (UPS on battery, ATS transfer, a breaker near trip, a PSU
alarm) — the fast path — or when an action the actuator held for later (a staggered shed layer
or restore step) falls due, so a sequence advances at the poll period, not the decision
period. Where devices are polled in the background (``Poller``), a batch that changes an
event metric wakes the loop at once (``Controller.offer``), so an event is decided on when it
arrives, not at the next tick. Nothing that fails in one device, model or policy stops the
loop: it becomes a status, a log line on transition, and a metric.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from wattwise.act.actuator import Actuator, Verdict
from wattwise.act.interlocks import InterlockContext
from wattwise.drivers.base import Driver
from wattwise.errors import WattwiseError
from wattwise.model.clock import Clock
from wattwise.model.metrics import PHASE_BREAKER_METRICS
from wattwise.model.values import Decision, Reading
from wattwise.telemetry.batch import ReadingBatch

logger = logging.getLogger(__name__)


class IngestSink(Protocol):
    """Validates and stores readings; returns the accepted ones. Never raises for a store outage."""

    def ingest(self, readings: Sequence[Reading], now_s: float) -> ReadingBatch:
        """Validate, store (or hold), and return what was accepted."""
        ...


class Planner(Protocol):
    """Predict and decide: latest values in, decisions and interlock context out."""

    def plan(self, latest: LatestValues, now_s: float, event: str | None) -> tuple[list[Decision], InterlockContext]:
        """Decisions for now (pure with respect to devices)."""
        ...

    def observe_verdicts(self, verdicts: Sequence[Verdict]) -> None:
        """What became of the actions (e.g. a workload acknowledged on a new server)."""
        ...


EVENT_METRICS = (
    "on_battery",
    "low_battery",
    "leak_detected",
    "breaker_tripped",
    *PHASE_BREAKER_METRICS,
    "ats_source_index",
    "source_available",
    "available",
    "load_frac",
)

_EVENT_SET = frozenset(EVENT_METRICS)

_TRIP_METRICS = frozenset({"on_battery", "low_battery", "leak_detected", "breaker_tripped", *PHASE_BREAKER_METRICS})
"""Flags whose rise from 0 to 1 is a power event."""


@dataclass
class LatestValues:
    """Latest accepted value of every (device, metric), with its time.

    ``events`` holds the same for the metrics events are detected on, kept apart so that
    comparing two ticks costs the few thousand event keys, not every reading.
    """

    values: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    events: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def update_batch(self, batch: ReadingBatch) -> None:
        """Take a validated batch (one poll: its rows are at least as new as what is held)."""
        for target, part in ((self.values, batch), (self.events, batch.take(np.isin(batch.metric, EVENT_METRICS)))):
            keys = zip(part.device_id.tolist(), part.metric.tolist(), strict=True)
            target.update(zip(keys, zip(part.value.tolist(), part.t_s.tolist(), strict=True), strict=True))

    def events_view(self) -> LatestValues:
        """A copy of the event metrics only."""
        return LatestValues(dict(self.events), dict(self.events))

    def get(self, device_id: str, metric: str, default: float | None = None) -> float | None:
        """Latest value or ``default``."""
        hit = self.values.get((device_id, metric))
        return hit[0] if hit is not None else default


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did."""

    t_s: float
    readings: int
    accepted: int
    event: str | None
    decided: bool
    verdicts: tuple[Verdict, ...] = ()
    errors: tuple[str, ...] = ()


EventDetector = Callable[[LatestValues, LatestValues, Collection[str]], str | None]


def detect_event(before: LatestValues, after: LatestValues, expected: Collection[str] = frozenset()) -> str | None:
    """Name the first power event visible between two views, or ``None``.

    UPS going on battery or low battery, an ATS changing source, a feed going dark, a breaker
    at ≥95 % of its rating, a PSU or cooling unit going down, or a leak. A unit in ``expected``
    (one the controller switched off or shed, and the PSUs behind its outlets) going down is
    the command's effect, not an event: a response of a thousand outlet-offs would otherwise
    re-decide on every poll that shows one more PSU dark.
    """
    for (device, metric), (value, _) in after.events.items():
        name = _event(device, metric, value, before.get(device, metric))
        if name is not None and not (metric == "available" and device in expected):
            return name
    return None


def _event(device: str, metric: str, value: float, old: float | None) -> str | None:
    """The event a change of one event metric is, or ``None``."""
    if metric in _TRIP_METRICS and value >= 1 > (old or 0):
        return f"{device}: {metric}"
    if metric == "ats_source_index" and old is not None and value != old:
        return f"{device}: ATS transfer"
    if metric == "load_frac" and value >= 0.95 > (old or 0):
        return f"{device}: near limit"
    if old is None:  # first sight of a device is its state, not a change (standby sources read 0)
        return None
    if metric == "source_available" and value < 1 <= old:
        return f"{device}: source lost"
    if metric == "source_available" and value >= 1 > old:
        return f"{device}: source returned"
    if metric == "available" and value < 1 <= old:
        return f"{device}: unit down"
    return None


class Controller:
    """Runs the loop over drivers, a sink, a planner and an actuator.

    Args:
        drivers: Where readings come from (the twin, NUT, Redfish, SNMP, Modbus…).
        sink: Validation and storage.
        planner: Prediction and policies.
        actuator: Interlocked, journaled execution.
        clock: Wall clock or the twin's SimClock.
        poll_period_s: Seconds between polls.
        decide_period_s: Seconds between routine decisions (events decide at once).
        read_timeout_s: Per-driver read time limit.
        is_leader: Returns whether this controller may act now (HA); followers stay warm.
        detector: Names the power event between two views of the event metrics.
        expected_down: Units whose going down is the effect of the controller's own commands
            (by default what the actuator switched off or shed; ``assemble`` adds the PSUs
            behind switched-off outlets).
        settle_s: After a response sent during a power event (or to an event), the ``acting``
            hooks are told ``False`` only this much later (a later response takes over), so the
            decision the event sets off a moment later (a UPS seen on battery after its feed was
            lost) does not meet the whole backlog of bulk polls released at once. Other
            responses (restore steps once power is back) release at once: they need fresh
            outlet and server readings.
    """

    def __init__(
        self,
        drivers: Sequence[Driver],
        sink: IngestSink,
        planner: Planner,
        actuator: Actuator,
        clock: Clock,
        poll_period_s: float = 1.0,
        decide_period_s: float = 5.0,
        read_timeout_s: float = 2.0,
        is_leader: Callable[[], bool] = lambda: True,
        detector: EventDetector = detect_event,
        expected_down: Callable[[], Collection[str]] | None = None,
        settle_s: float = 2.0,
    ) -> None:
        self.drivers = tuple(drivers)
        self.sink = sink
        self.planner = planner
        self.actuator = actuator
        self.clock = clock
        self.poll_period_s = poll_period_s
        self.decide_period_s = decide_period_s
        self.read_timeout_s = read_timeout_s
        self.is_leader = is_leader
        self.detector = detector
        self.expected_down = expected_down or actuator.switched_off
        self.latest = LatestValues()
        self.driver_errors: dict[str, str] = {}
        self.last_decisions: list[Decision] = []
        self.last_verdicts: list[Verdict] = []
        self.last_event: str | None = None
        self._last_decide_s = float("-inf")
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self.settle_s = settle_s
        self._settle: asyncio.TimerHandle | None = None
        self.acting: list[Callable[[bool], None]] = []
        """Told ``True`` before commands are sent and ``False`` once they are answered
        (``PolledDriver.hold_bulk``: bulk polls wait while a response goes out)."""
        self.listeners: list[Callable[[TickReport], None]] = []

    async def _read_one(self, driver: Driver) -> list[Reading]:
        try:
            readings = await asyncio.wait_for(driver.read(), timeout=self.read_timeout_s)
        except (TimeoutError, WattwiseError) as err:
            msg = "timed out" if isinstance(err, TimeoutError) else str(err)
            if self.driver_errors.get(driver.name) is None:
                logger.warning("driver %s failing: %s", driver.name, msg)
            self.driver_errors[driver.name] = msg
            return []
        if self.driver_errors.pop(driver.name, None) is not None:
            logger.info("driver %s recovered", driver.name)
        return readings

    async def read(self) -> list[Reading]:
        """Poll every driver concurrently; a failing one yields nothing and a status."""
        batches = await asyncio.gather(*(self._read_one(d) for d in self.drivers))
        return [r for batch in batches for r in batch]

    async def tick(self, force_decide: bool = False) -> TickReport:
        """One poll, and a decision when due or when an event shows."""
        now_s = self.clock.now_s()
        readings = await self.read()
        errors: list[str] = [f"{k}: {v}" for k, v in self.driver_errors.items()]
        accepted = self.sink.ingest(readings, now_s)
        before = self.latest.events_view()
        self.latest.update_batch(accepted)
        event = self.detector(before, self.latest.events_view(), self.expected_down())
        held_due = now_s >= self.actuator.next_due_s and self.is_leader()
        due = force_decide or event is not None or held_due or now_s - self._last_decide_s >= self.decide_period_s
        verdicts: list[Verdict] = []
        if due:
            verdicts = await self._decide_and_act(now_s, event, errors)
        report = TickReport(now_s, len(readings), len(accepted), event, due, tuple(verdicts), tuple(errors))
        for listener in self.listeners:
            listener(report)
        return report

    async def _decide_and_act(self, now_s: float, event: str | None, errors: list[str]) -> list[Verdict]:
        self._last_decide_s = now_s
        if event is not None:
            self.last_event = event
            logger.info("event: %s; deciding now", event)
        try:
            decisions, ctx = self.planner.plan(self.latest, now_s, event)
        except Exception as err:  # a model or policy bug must not stop the loop
            logger.exception("planner failed")
            errors.append(f"planner: {type(err).__name__}: {err}")
            return []
        self.last_decisions = decisions
        if not self.is_leader():
            return []
        sends = any(d.actions for d in decisions)
        if sends:
            self._cancel_settle()
        self._tell_acting(sends, True)
        try:
            verdicts = await self.actuator.execute(decisions, ctx)
        finally:
            if sends and (event is not None or ctx.power_event) and self.settle_s > 0:
                loop = asyncio.get_running_loop()
                self._settle = loop.call_later(self.settle_s, self._settled)
            else:
                self._tell_acting(sends, False)
        self.last_verdicts = verdicts
        try:
            self.planner.observe_verdicts(verdicts)
        except Exception as err:  # bookkeeping must not stop the loop either
            logger.exception("planner failed to observe verdicts")
            errors.append(f"planner: {type(err).__name__}: {err}")
        return verdicts

    def _cancel_settle(self) -> None:
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None

    def _settled(self) -> None:
        self._settle = None
        self._tell_acting(True, False)

    def _tell_acting(self, sends: bool, acting: bool) -> None:
        for hook in self.acting if sends else ():
            try:
                hook(acting)
            except Exception:  # a hook must not stop the loop
                logger.exception("acting hook failed")

    def wake(self) -> None:
        """Start the next tick now instead of at the end of the poll period."""
        self._wake.set()

    def offer(self, readings: Sequence[Reading]) -> bool:
        """Wake the loop when ``readings`` (a background poll's batch) show a power event.

        Called by a poller's sink as a batch arrives; the tick that follows reads the batch
        through the drivers as usual. Returns whether the loop was woken.
        """
        held = self.latest.events
        for r in readings:
            if r.metric in _EVENT_SET:
                old = held.get((r.device_id, r.metric))
                if _event(r.device_id, r.metric, r.value, None if old is None else old[0]) is not None:
                    self._wake.set()
                    return True
        return False

    async def _pause(self, duration_s: float) -> None:
        """Sleep on the clock for ``duration_s``, or less when woken."""
        if self._wake.is_set() or duration_s <= 0.0:
            self._wake.clear()
            return
        sleeper = asyncio.ensure_future(self.clock.sleep_s(duration_s))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)
        self._wake.clear()

    async def run(self, until_s: float | None = None) -> None:
        """Tick until stopped (or until the clock reaches ``until_s``)."""
        try:
            while not self._stop.is_set():
                if until_s is not None and self.clock.now_s() >= until_s:
                    return
                started_s = self.clock.now_s()
                try:
                    await self.tick()
                except Exception:  # the loop itself must survive anything
                    logger.exception("tick failed")
                await self._pause(max(0.0, self.poll_period_s - (self.clock.now_s() - started_s)))
        finally:
            if self._settle is not None:  # nothing held once the loop is gone
                self._cancel_settle()
                self._tell_acting(True, False)

    def stop(self) -> None:
        """Ask ``run`` to return after the current tick."""
        self._stop.set()
