"""The poller: one coordinator per device, each at its own period; dead or slow devices never stall the rest.

Home Assistant's ``DataUpdateCoordinator`` idea: a coordinator owns one driver, polls it every
``period_s`` under a deadline, hands readings to a sink, and keeps availability and staleness
as data. Failures are logged on transitions (first failure, recovery) by the coordinator, not
once per failed poll. Only :class:`wattwise.drivers.base.Driver` and
:class:`wattwise.model.clock.Clock` are used, so the same poller runs on the wall clock or in
simulated time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from wattwise.drivers.base import DeviceHealth, Driver
from wattwise.errors import DriverError
from wattwise.model.clock import Clock
from wattwise.model.values import Reading

logger = logging.getLogger(__name__)

Sink = Callable[[str, Sequence[Reading]], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class PollResult:
    """Outcome of one poll of one device.

    Attributes:
        name: The coordinator (driver) name.
        ok: Whether readings came back.
        duration_s: How long the poll took, s.
        count: Readings returned.
        error: Error text when not ok.
    """

    name: str
    ok: bool
    duration_s: float
    count: int = 0
    error: str = ""


class DeviceCoordinator:
    """Polls one driver; tracks availability and staleness.

    Args:
        driver: The device's driver.
        clock: Time source and sleeper.
        period_s: Poll period.
        timeout_s: Deadline of one poll (defaults to the period).
        sink: Receives ``(name, readings)`` after each successful poll.
    """

    def __init__(
        self, driver: Driver, clock: Clock, period_s: float, timeout_s: float | None = None, sink: Sink | None = None
    ) -> None:
        self.driver = driver
        self.name = driver.name
        self.clock = clock
        self.period_s = period_s
        self.timeout_s = timeout_s or period_s
        self.sink = sink
        self.last_ok_t_s: float | None = None
        self.last_error = ""
        self.failures = 0
        self.polls = 0

    @property
    def available(self) -> bool:
        """Whether the last poll succeeded."""
        return self.polls > 0 and self.failures == 0

    def staleness_s(self) -> float:
        """Seconds since the last successful poll (``inf`` if never)."""
        return math.inf if self.last_ok_t_s is None else max(0.0, self.clock.now_s() - self.last_ok_t_s)

    def health(self) -> DeviceHealth:
        """Availability as data."""
        return DeviceHealth(self.name, self.available, self.last_ok_t_s, self.last_error)

    async def poll_once(self) -> PollResult:
        """One poll under the deadline; never raises for device failures."""
        t0 = self.clock.now_s()
        self.polls += 1
        try:
            # asyncio.timeout, not wait_for: wait_for wraps the read in one more task per poll.
            async with asyncio.timeout(self.timeout_s):
                readings = await self.driver.read()
        except (DriverError, TimeoutError) as err:
            return self._failed(err, t0)
        if self.failures:
            logger.info("%s is back after %d failed polls", self.name, self.failures)
        self.failures, self.last_error, self.last_ok_t_s = 0, "", self.clock.now_s()
        if self.sink is not None:
            pending = self.sink(self.name, readings)
            if pending is not None:
                await pending
        return PollResult(self.name, True, self.clock.now_s() - t0, len(readings))

    def _failed(self, err: BaseException, t0: float) -> PollResult:
        text = str(err) or f"no answer within {self.timeout_s} s"
        if self.failures == 0:
            logger.warning("%s unavailable: %s (%s)", self.name, text, type(err).__name__)
        self.failures += 1
        self.last_error = text
        return PollResult(self.name, False, self.clock.now_s() - t0, 0, text)

    def phase_frac(self) -> float:
        """Where in its period this device is polled, in [0, 1), fixed by its name.

        As Prometheus spreads scrape targets: a thousand devices of one period are then not
        polled in one burst that delays everything else on the loop (an event's poll included).
        """
        return zlib.crc32(self.name.encode()) / 2**32

    async def run(self, stop: asyncio.Event, spread: bool = False, gate: asyncio.Event | None = None) -> None:
        """Poll every ``period_s`` (aligned to the period, skipping missed ticks) until ``stop``.

        With ``spread``, the first poll waits for this device's phase (:meth:`phase_frac`); with
        ``gate``, each poll waits while the gate is closed (a poll in flight is not stopped) and
        then resumes at its next phase of the period.
        """
        next_t = self.clock.now_s()
        if spread:
            next_t += self.phase_frac() * self.period_s
            await self.clock.sleep_s(next_t - self.clock.now_s())
        while not stop.is_set():
            if gate is not None and not gate.is_set():
                await gate.wait()
                # Back at this device's own phase, not at once: a gate opening does not
                # release every held device in the same instant.
                now = self.clock.now_s()
                if next_t < now:
                    next_t += math.ceil((now - next_t) / self.period_s) * self.period_s
                    await self.clock.sleep_s(next_t - now)
                if stop.is_set():
                    break
            await self.poll_once()
            next_t += self.period_s
            now = self.clock.now_s()
            if next_t < now:  # overran: skip the missed ticks instead of bursting
                next_t += math.ceil((now - next_t) / self.period_s) * self.period_s
            await self.clock.sleep_s(next_t - now)


class Poller:
    """Coordinators for many devices.

    Args:
        drivers: ``(driver, period_s)`` pairs.
        clock: Time source.
        sink: Receives readings of every successful poll.
        max_concurrency: Polls in flight at once in :meth:`poll_all` (bounds sockets).
        timeout_s: Deadline of one poll (defaults to each device's period).
        spread: Poll each device at its own phase of its period (:meth:`DeviceCoordinator.phase_frac`)
            rather than every device of a period at once.
        bulk_period_s: Devices polled this rarely or more rarely are bulk telemetry (servers,
            PDUs): :meth:`hold_bulk` pauses their polls while the controller sends a response,
            so an event's commands and the polls that show events (UPS, ATS, feeds) come first.
    """

    def __init__(
        self,
        drivers: Sequence[tuple[Driver, float]],
        clock: Clock,
        sink: Sink | None = None,
        max_concurrency: int = 512,
        timeout_s: float | None = None,
        spread: bool = True,
        bulk_period_s: float = 5.0,
    ) -> None:
        self.clock = clock
        self.spread = spread
        self.bulk_period_s = bulk_period_s
        self._bulk_open = asyncio.Event()
        self._bulk_open.set()
        self.coordinators = [DeviceCoordinator(d, clock, p, timeout_s, sink) for d, p in drivers]
        self._limit = asyncio.Semaphore(max_concurrency)
        self._stop = asyncio.Event()

    async def _limited(self, c: DeviceCoordinator) -> PollResult:
        async with self._limit:
            return await c.poll_once()

    async def poll_all(self) -> list[PollResult]:
        """Poll every device once, concurrently (one cycle)."""
        return list(await asyncio.gather(*(self._limited(c) for c in self.coordinators)))

    async def run(self) -> None:
        """Run every coordinator at its own period until :meth:`stop`."""
        self._stop.clear()
        await asyncio.gather(*(c.run(self._stop, self.spread, self._gate(c)) for c in self.coordinators))

    def _gate(self, c: DeviceCoordinator) -> asyncio.Event | None:
        return self._bulk_open if c.period_s >= self.bulk_period_s else None

    def hold_bulk(self, held: bool) -> None:
        """Pause (``True``) or resume (``False``) new polls of bulk-telemetry devices.

        On resuming, each device polls at its own next phase of its period, not all at once.
        """
        if held:
            self._bulk_open.clear()
        else:
            self._bulk_open.set()

    @property
    def bulk_held(self) -> bool:
        """Whether bulk-telemetry polls are paused now."""
        return not self._bulk_open.is_set()

    def stop(self) -> None:
        """Ask every coordinator to finish its current poll and return."""
        self._stop.set()
        self._bulk_open.set()  # a coordinator waiting at the gate sees the stop

    def health(self) -> list[DeviceHealth]:
        """Health of every device."""
        return [c.health() for c in self.coordinators]

    def staleness_s(self) -> dict[str, float]:
        """Staleness of every device, s."""
        return {c.name: c.staleness_s() for c in self.coordinators}
