"""Pipeline: back-pressure instead of loss when the store is slow; a failing store is retried."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from wattwise.errors import StoreError
from wattwise.model.clock import SimClock
from wattwise.model.values import Reading
from wattwise.store.base import WriteResult
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.pipeline import IngestPipeline
from wattwise.telemetry.validate import ReadingValidator

NOW_S = 1_700_000_000.0


class SlowThenFailingStore:
    """A real DuckDB store behind a slow link that also drops the first ``failures`` writes."""

    def __init__(self, inner: DuckDBStore, delay_s: float, failures: int) -> None:
        self.inner, self.delay_s, self.failures = inner, delay_s, failures
        self.writes = 0

    def write(self, batch: ReadingBatch) -> WriteResult:
        time.sleep(self.delay_s)
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("link down")
        self.writes += 1
        return self.inner.write(batch)


def _batch(i: int, n: int = 100) -> ReadingBatch:
    return ReadingBatch.from_columns(["a"] * n, ["power_w"] * n, np.full(n, 5.0), NOW_S - 100 + i + np.arange(n) / n)


async def test_slow_store_blocks_producers_instead_of_dropping(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    slow = SlowThenFailingStore(store, delay_s=0.02, failures=3)
    pipeline = IngestPipeline(slow, ReadingValidator({"a"}), SimClock(NOW_S), max_queued_batches=2, batch_rows=200)
    stop = asyncio.Event()
    consumer = asyncio.create_task(pipeline.run(stop))
    max_queued = 0
    t0 = time.perf_counter()
    for i in range(40):
        await pipeline.submit(_batch(i))
        max_queued = max(max_queued, pipeline.queued_batches())
    producer_s = time.perf_counter() - t0
    stop.set()
    await consumer
    assert max_queued <= 2
    assert producer_s > 0.1, "producers must have waited for the slow store"
    assert store.count() == 40 * 100
    assert pipeline.store_failures == 3
    assert pipeline.validator.stats.accepted_total == 4000
    assert pipeline.write_count == slow.writes
    store.close()


async def test_commit_callbacks_run_only_after_the_rows_are_stored(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    pipeline = IngestPipeline(store, ReadingValidator({"a"}), SimClock(NOW_S))
    seen: list[int] = []
    stop = asyncio.Event()
    consumer = asyncio.create_task(pipeline.run(stop))
    await pipeline.submit(_batch(0), on_commit=lambda: seen.append(store.count()))
    await pipeline.submit_readings([Reading("a", "power_w", 1.0, NOW_S)])
    stop.set()
    await consumer
    assert len(seen) == 1
    assert seen[0] >= 100  # the callback saw its own rows already committed
    assert store.count() == 101
    assert pipeline.latest_view()[("a", "power_w")] == (1.0, NOW_S)
    store.close()


async def test_duplicates_found_by_the_store_are_counted_as_rejections(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    pipeline = IngestPipeline(store, ReadingValidator({"a"}), SimClock(NOW_S))
    await pipeline.commit(_batch(0))
    res = await pipeline.commit(_batch(0))  # a redelivery after a crash
    assert (res.stored, res.rejected) == (0, 100)
    assert pipeline.validator.stats.by_reason() == {"duplicate": 100}
    assert pipeline.validator.stats.accepted_total == 100
    store.close()
