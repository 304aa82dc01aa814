"""Contracts of the telemetry layer: where validated readings go (a sink, e.g. a store)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from wattwise.telemetry.batch import ReadingBatch


class SinkResult(Protocol):
    """What a sink reports after a write (``wattwise.store.base.WriteResult`` fits)."""

    @property
    def inserted(self) -> int:
        """Rows newly stored."""
        ...

    @property
    def duplicates(self) -> Mapping[str, int]:
        """Rows already stored, per device."""
        ...


class ReadingSink(Protocol):
    """Takes validated batches and commits them (every ``TimeSeriesStore`` is one).

    ``write`` must be atomic: when it raises ``StoreError`` nothing of the batch was kept,
    so the caller may retry the same batch.
    """

    def write(self, batch: ReadingBatch) -> SinkResult:
        """Commit one batch."""
        ...
