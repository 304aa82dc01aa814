"""Periodic retraining inside the controller's process: store reads in a thread, fitting in a worker process.

The embedded DuckDB file can be open in one process only, so a separate ``wattwise train``
cannot read it while ``wattwise demo`` holds it. :class:`StoreRetrainer` does the same work
from inside: every ``every_s`` it reads each upstream node's load history through the
controller's own store (in a thread), fits and scores the forecaster in a separate worker
process (fitting holds the interpreter for seconds to minutes), and saves each as the next
version (in a thread). The event loop only awaits, so decisions go on while it trains; the
planner's :class:`~wattwise.control.models.NodeForecasts` picks the versions up as it does
those of ``wattwise train``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from wattwise.control.model_registry import DEFAULT_PREFIX, StoreModelRegistry, load_store_series, model_name
from wattwise.decide.index import SiteIndex
from wattwise.errors import PredictionError
from wattwise.model.clock import Clock
from wattwise.predict.training import train_to_blob
from wattwise.store.base import TimeSeriesStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainReport:
    """What one retraining pass did.

    Attributes:
        saved: Model name → version saved.
        skipped: Node id → why it was not trained (no readings, too little history).
    """

    saved: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


class StoreRetrainer:
    """Retrains every node's demand forecaster from the store, off the event loop.

    Args:
        index: The site's arrays (its nodes are the series).
        store: The controller's store (its calls lock; they run in a thread).
        every_s: Seconds of the controller's clock between passes.
        model: A :data:`~wattwise.predict.training.MODELS` name.
        horizon_s: Horizon calibrated and scored, s (the policies' horizon).
        step_s: Bucket of the stored readings, s.
        history_s: History read per pass, s.
        test_frac: Held-out tail scored against persistence.
        seed: Seed of every random choice.
        prefix: Model name prefix.
    """

    def __init__(
        self,
        index: SiteIndex,
        store: TimeSeriesStore,
        *,
        every_s: float = 3600.0,
        model: str = "holt-winters",
        horizon_s: float = 900.0,
        step_s: float = 60.0,
        history_s: float = 7 * 86_400.0,
        test_frac: float = 0.25,
        seed: int = 0,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.index = index
        self.store = store
        self.every_s = every_s
        self.model = model
        self.horizon_s = horizon_s
        self.step_s = step_s
        self.history_s = history_s
        self.test_frac = test_frac
        self.seed = seed
        self.prefix = prefix
        self.registry = StoreModelRegistry(store)
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, clock: Clock) -> None:
        """Retrain every ``every_s`` until cancelled; a failed pass is logged and the next one runs."""
        while True:
            await clock.sleep_s(self.every_s)
            try:
                await self.retrain_once()
            except Exception:  # retraining must never take the controller down
                logger.exception("retraining failed")

    async def retrain_once(self) -> RetrainReport:
        """One pass over every node."""
        series, skipped = await asyncio.to_thread(
            load_store_series, self.store, self.index, self.step_s, self.history_s
        )
        report = RetrainReport(skipped=dict(skipped))
        loop = asyncio.get_running_loop()
        for node_id, history in series.items():
            args = (history, self.model, self.seed, self.horizon_s, self.test_frac)
            try:
                blob, meta = await loop.run_in_executor(self._worker(), train_to_blob, *args)
            except PredictionError as err:
                report.skipped[node_id] = str(err)
                continue
            name = model_name(node_id, self.prefix)
            report.saved[name] = await asyncio.to_thread(self._save, name, blob, meta)
        logger.info("retrained %d node model(s); %d node(s) skipped", len(report.saved), len(report.skipped))
        return report

    def _save(self, name: str, blob: bytes, meta: dict[str, str]) -> int:
        version = self.registry.next_version(name)
        self.registry.save(name, version, blob, meta)
        return version

    def _worker(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the controller process has threads (API server, registry checks)
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def close(self) -> None:
        """Stop the worker process."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
