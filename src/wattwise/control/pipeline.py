"""Wiring of telemetry and store for the loop: validate, store (with back-pressure), journal."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence

from wattwise.act.base import JournalEntry, Phase
from wattwise.errors import StoreError, WattwiseError
from wattwise.model.values import Reading
from wattwise.store.base import TimeSeriesStore
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.validate import ReadingValidator

logger = logging.getLogger(__name__)


class StorePipeline:
    """Validates readings and writes the accepted ones; a slow or down store never loses them.

    Batches the store refuses wait in a bounded queue and are retried first on the next
    ingest (back-pressure: when the queue is full the oldest retry is kept and the error is
    raised, so the caller sees it instead of silent loss).

    Args:
        validator: Rejects bad readings with counted reasons.
        store: Where accepted readings go.
        max_pending_batches: How many failed batches to hold for retry.
    """

    def __init__(self, validator: ReadingValidator, store: TimeSeriesStore, max_pending_batches: int = 600) -> None:
        self.validator = validator
        self.store = store
        self.max_pending_batches = max_pending_batches
        self._pending: deque[ReadingBatch] = deque()
        self.store_ok = True

    @property
    def pending_batches(self) -> int:
        """Accepted batches not yet written."""
        return len(self._pending)

    def ingest(self, readings: Sequence[Reading], now_s: float) -> list[Reading]:
        """Validate, queue and flush; return the accepted readings (even while the store is down)."""
        result = self.validator.validate(ReadingBatch.from_readings(readings), now_s)
        if len(result.accepted):
            if len(self._pending) >= self.max_pending_batches:
                raise StoreError(f"store backlog full ({len(self._pending)} batches); not accepting more")
            self._pending.append(result.accepted)
        self.flush()
        return result.accepted.to_readings()

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
            self._pending.popleft()
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
