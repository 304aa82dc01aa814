"""In-process ingest from drivers: poll each driver on a clock and hand its readings to the pipeline.

A driver that fails is logged on the transition (first failure, then recovery), not on every
poll; its devices simply go stale, and staleness is data (``ReadingValidator.staleness_s``).
Any object with ``name`` and ``async read() -> list[Reading]`` fits (every ``Driver`` does),
so this module does not import the drivers package.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from wattwise.errors import DriverError
from wattwise.model.clock import Clock
from wattwise.model.values import Reading
from wattwise.telemetry.pipeline import IngestPipeline

logger = logging.getLogger(__name__)


class ReadingSource(Protocol):
    """The reading half of ``wattwise.drivers.base.Driver``."""

    name: str

    async def read(self) -> list[Reading]:
        """Poll once."""
        ...


class DriverPoller:
    """Polls drivers every ``period_s`` of ``clock`` time and submits their readings.

    Args:
        drivers: The sources to poll (each polled concurrently).
        pipeline: Where readings go.
        clock: Wall clock in production, ``SimClock`` in the twin and tests.
        period_s: Poll period.
    """

    def __init__(
        self, drivers: Sequence[ReadingSource], pipeline: IngestPipeline, clock: Clock, period_s: float = 5.0
    ) -> None:
        self.drivers = tuple(drivers)
        self.pipeline = pipeline
        self.clock = clock
        self.period_s = period_s
        self.failing: dict[str, str] = {}
        self.polls = 0

    async def poll_once(self) -> int:
        """Poll every driver once; return how many readings were submitted."""
        results = await asyncio.gather(*(self._read(d) for d in self.drivers))
        readings = [r for rs in results for r in rs]
        if readings:
            await self.pipeline.submit_readings(readings)
        self.polls += 1
        return len(readings)

    async def _read(self, driver: ReadingSource) -> list[Reading]:
        try:
            readings = await driver.read()
        except DriverError as err:
            if driver.name not in self.failing:
                logger.warning("driver %s failed, its devices go stale: %s", driver.name, err)
            self.failing[driver.name] = str(err)
            return []
        if self.failing.pop(driver.name, None) is not None:
            logger.info("driver %s answers again", driver.name)
        return readings

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set, one period apart (on the poller's clock)."""
        while not stop.is_set():
            await self.poll_once()
            await self.clock.sleep_s(self.period_s)
