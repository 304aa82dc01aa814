"""The action journal and the model registry as the layers above use them, backed by any store.

``StoreJournal`` has the ``append``/``entries`` verbs of ``wattwise.act.base.Journal`` and
writes through to the store's journal table in its own transaction (durable before it
returns: journal-before-send).
"""

from __future__ import annotations

from wattwise.store.base import JournalEntry, JournalRecord, TimeSeriesStore


class StoreJournal:
    """Append-only journal on a ``TimeSeriesStore`` (shared by every controller of a PostgreSQL store)."""

    def __init__(self, store: TimeSeriesStore) -> None:
        self.store = store

    def append(self, entry: JournalRecord) -> None:
        """Persist one entry (committed before returning)."""
        self.store.append_journal(entry)

    def entries(self, since_s: float = 0.0, limit: int = 1000) -> list[JournalEntry]:
        """Entries at or after ``since_s``, oldest first."""
        return self.store.journal(since_s, limit)
