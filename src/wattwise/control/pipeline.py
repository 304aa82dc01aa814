"""Wiring of telemetry and store for the loop: validate, store (with back-pressure), journal."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence

from wattwise.act.base import JournalEntry, Phase
from wattwise.errors import WattwiseError
from wattwise.model.values import Reading
from wattwise.store.base import TimeSeriesStore
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.validate import ReadingValidator

logger = logging.getLogger(__name__)


class StorePipeline:
    """Validates readings and writes the accepted ones; a slow or down store never stops the loop.

    Batches the store refuses wait in a queue bounded in rows and are retried, oldest first,
    on the next ingest. Past the bound the oldest held batch is dropped, counted in
    ``dropped_rows`` and logged once per outage: the loop must keep deciding on fresh,
    validated readings, and memory must stay bounded whatever the outage's length.

    Args:
        validator: Rejects bad readings with counted reasons.
        store: Where accepted readings go.
        max_pending_rows: Most accepted rows held while the store is down.
        store_every_s: Least time between stored polls (0: store every poll). Every poll is
            validated and reaches the decisions; only storage is thinned (history resolution).
    """

    def __init__(
        self,
        validator: ReadingValidator,
        store: TimeSeriesStore,
        max_pending_rows: int = 5_000_000,
        store_every_s: float = 0.0,
    ) -> None:
        self.validator = validator
        self.store = store
        self.max_pending_rows = max_pending_rows
        self.store_every_s = store_every_s
        self._last_stored_s = float("-inf")
        self._pending: deque[ReadingBatch] = deque()
        self._pending_rows = 0
        self.dropped_rows = 0
        self.store_ok = True

    @property
    def pending_batches(self) -> int:
        """Accepted batches not yet written."""
        return len(self._pending)

    def ingest(self, readings: Sequence[Reading], now_s: float) -> ReadingBatch:
        """Validate, queue and flush; return the accepted batch (even while the store is down)."""
        accepted = self.validator.validate(ReadingBatch.from_readings(readings), now_s).accepted
        if len(accepted) and now_s - self._last_stored_s >= self.store_every_s:
            self._last_stored_s = now_s
            self._pending.append(accepted)
            self._pending_rows += len(accepted)
        self.flush()
        while self._pending_rows > self.max_pending_rows and len(self._pending) > 1:
            old = self._pending.popleft()
            self._pending_rows -= len(old)
            if self.dropped_rows == 0:
                logger.error(
                    "store down too long: dropping the oldest held readings (bound %d rows)", self.max_pending_rows
                )
            self.dropped_rows += len(old)
        return accepted

    def flush(self) -> None:
        """Write queued batches oldest first; stop at the first failure."""
        while self._pending:
            try:
                self.store.write(self._pending[0])
            except WattwiseError as err:
                if self.store_ok:
                    logger.warning("store write failing, holding %d batch(es): %s", len(self._pending), err)
                self.store_ok = False
                return
            self._pending_rows -= len(self._pending.popleft())
            if not self.store_ok:
                logger.info("store recovered")
            self.store_ok = True


class StoreJournal:
    """The action journal kept in the time-series store (same database as readings)."""

    def __init__(self, store: TimeSeriesStore) -> None:
        self.store = store

    def append(self, entry: JournalEntry) -> None:
        """Write one entry before the caller goes on."""
        self.store.append_journal(entry)

    def append_many(self, entries: Sequence[JournalEntry]) -> None:
        """Write several entries in one transaction before the caller goes on."""
        self.store.append_journal_many(entries)

    def entries(self, since_s: float = 0.0, limit: int = 1000) -> list[JournalEntry]:
        """Entries since ``since_s``."""
        return [
            JournalEntry(
                command_id=e.command_id,
                t_s=e.t_s,
                phase=Phase(e.phase),
                kind=e.kind,
                target_id=e.target_id,
                value=e.value,
                reason=e.reason,
                decision_id=e.decision_id,
                actor=e.actor,
                fencing_token=e.fencing_token,
                message=e.message,
            )
            for e in self.store.journal(since_s, limit)
        ]
