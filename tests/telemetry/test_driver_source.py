"""Driver polling on a SimClock: readings reach the store; a failing driver is logged once and goes stale."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from wattwise.errors import DeviceUnavailable
from wattwise.model.clock import SimClock
from wattwise.model.values import Reading
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.telemetry.driver_source import DriverPoller
from wattwise.telemetry.pipeline import IngestPipeline
from wattwise.telemetry.validate import ReadingValidator


class ScriptedDriver:
    """A driver whose answers are scripted per poll (``None`` = device unreachable)."""

    def __init__(self, name: str, clock: SimClock, script: list[float | None]) -> None:
        self.name, self.clock, self.script = name, clock, list(script)

    async def read(self) -> list[Reading]:
        value = self.script.pop(0)
        if value is None:
            raise DeviceUnavailable("timeout", device_id=self.name)
        return [Reading(self.name, "power_w", value, self.clock.now_s())]


async def test_polls_store_readings_and_failures_make_devices_stale(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SimClock(1_700_000_000.0)
    store = DuckDBStore(tmp_path / "p.duckdb")
    pipeline = IngestPipeline(store, ReadingValidator({"ups-a", "ups-b"}), clock)
    a = ScriptedDriver("ups-a", clock, [100.0, 110.0, 120.0, 130.0])
    b = ScriptedDriver("ups-b", clock, [50.0, None, None, 60.0])
    poller = DriverPoller([a, b], pipeline, clock, period_s=5.0)
    stop = asyncio.Event()
    consumer = asyncio.create_task(pipeline.run(stop))
    with caplog.at_level(logging.INFO, logger="wattwise.telemetry.driver_source"):
        for _ in range(3):
            await poller.poll_once()
            await clock.sleep_s(5.0)
        async with asyncio.timeout(10):
            while True:  # the consumer task commits in the background
                if pipeline.validator.stats.accepted_total == 4:
                    break
                await asyncio.sleep(0.01)
        assert pipeline.validator.staleness_s(clock.now_s())["ups-b"] == 15.0
        assert pipeline.validator.staleness_s(clock.now_s())["ups-a"] == 5.0
        await poller.poll_once()
    stop.set()
    await consumer
    assert store.count() == 6
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "driver ups-b failed, its devices go stale",
        "driver ups-b answers again",
    ]
    store.close()
