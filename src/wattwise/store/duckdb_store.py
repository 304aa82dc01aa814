"""The embedded default store: one DuckDB file, no set-up.

Batches are loaded through a pandas frame scanned by DuckDB (columnar, no per-row SQL);
duplicates are skipped by the primary key and counted per device.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import duckdb
import numpy as np
import pandas as pd

from wattwise.errors import StoreError
from wattwise.model.values import Reading
from wattwise.store import sql
from wattwise.store.base import (
    TAG_COLUMNS,
    Bucket,
    JournalEntry,
    JournalRecord,
    ModelRecord,
    RetentionResult,
    TagAggregate,
    WriteResult,
)
from wattwise.telemetry.batch import ReadingBatch

logger = logging.getLogger(__name__)
T = TypeVar("T")

_INSERT = f"INSERT INTO readings SELECT {', '.join(sql.READING_COLUMNS)} FROM batch_df ON CONFLICT DO NOTHING"
_INSERT_ALL = f"INSERT INTO readings SELECT {', '.join(sql.READING_COLUMNS)} FROM batch_df"
_DUPLICATES = (
    "SELECT b.device_id, count(*) FROM batch_df b JOIN readings r"
    " ON r.device_id = b.device_id AND r.metric = b.metric AND r.t_s = b.t_s"
    " WHERE r.t_s BETWEEN ? AND ? GROUP BY 1"
)
_LATEST = (
    "INSERT INTO latest SELECT device_id, metric, max(t_s), arg_max(value, t_s), arg_max(quality, t_s)"
    " FROM batch_df GROUP BY device_id, metric ON CONFLICT (device_id, metric) DO UPDATE"
    " SET t_s = excluded.t_s, value = excluded.value, quality = excluded.quality WHERE excluded.t_s > latest.t_s"
)


_JOURNAL_COLUMNS = "command_id, t_s, phase, kind, target_id, value, reason, decision_id, actor, fencing_token, message"


def _journal_frame(entries: Sequence[JournalRecord]) -> pd.DataFrame:
    """Journal rows as a frame, columns in the table's order."""
    return pd.DataFrame(
        {
            "command_id": [e.command_id for e in entries],
            "t_s": np.array([e.t_s for e in entries], dtype=np.float64),
            "phase": [str(e.phase) for e in entries],
            "kind": [str(e.kind) for e in entries],
            "target_id": [e.target_id for e in entries],
            "value": pd.array([e.value for e in entries], dtype="Float64"),
            "reason": [e.reason for e in entries],
            "decision_id": [e.decision_id for e in entries],
            "actor": [e.actor for e in entries],
            "fencing_token": pd.array([e.fencing_token for e in entries], dtype="Int64"),
            "message": [e.message for e in entries],
        }
    )


class DuckDBStore:
    """``TimeSeriesStore`` on a DuckDB file (or ``":memory:"``).

    Args:
        path: Database file; created with its schema on first use.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path)
        except duckdb.Error as err:
            raise StoreError(f"cannot open DuckDB store {self.path}: {err}") from err
        self._lock = threading.Lock()
        self._tags = sql.TagColumns()
        self._version = self._tx(lambda: sql.migrate(self._run, "duckdb"))

    def _run(self, statement: str, params: Sequence[object]) -> list[sql.Row]:
        cur = self._con.execute(statement, list(params))
        return cur.fetchall() if cur.description else []

    def _tx(self, fn: Callable[[], T]) -> T:
        with self._lock:
            try:
                self._con.begin()
                out = fn()
                self._con.commit()
            except duckdb.Error as err:
                self._con.rollback()
                raise StoreError(f"DuckDB store {self.path}: {err}") from err
            return out

    def _read(self, fn: Callable[[], T]) -> T:
        with self._lock:
            try:
                return fn()
            except duckdb.Error as err:
                raise StoreError(f"DuckDB store {self.path}: {err}") from err

    def schema_version(self) -> int:
        """Highest migration applied."""
        return int(self._version)

    def _frame(self, batch: ReadingBatch) -> pd.DataFrame:
        tag_cols = self._tags.columns(batch.tags)
        data: dict[str, object] = {
            "device_id": batch.device_id,
            "metric": batch.metric,
            "t_s": batch.t_s,
            "value": batch.value,
            "quality": batch.quality,
        }
        for name, col in zip((*TAG_COLUMNS, "tags"), tag_cols, strict=True):
            data[name] = col
        return pd.DataFrame(data)

    def write(self, batch: ReadingBatch) -> WriteResult:
        """Store a batch in one transaction; duplicates are skipped and counted per device."""
        if len(batch) == 0:
            return WriteResult(0)
        frame = self._frame(batch)
        with self._lock:
            self._con.register("batch_df", frame)
            try:
                # Fast path: insert and compare counts. Only a redelivery (fewer rows inserted
                # than sent) pays for the join that attributes duplicates to devices.
                result = self._attempt(len(batch), None)
                if result is None:
                    result = self._attempt(len(batch), (float(batch.t_s.min()), float(batch.t_s.max())))
                assert result is not None
                return result
            finally:
                self._con.unregister("batch_df")

    def _attempt(self, n: int, dup_window: tuple[float, float] | None) -> WriteResult | None:
        try:
            self._con.begin()
            if dup_window is None:
                # a plain INSERT costs half of ON CONFLICT; a duplicate makes it fail as a whole
                try:
                    self._con.execute(_INSERT_ALL)
                except duckdb.ConstraintException:
                    self._con.rollback()
                    return None
                dups: dict[str, int] = {}
                inserted = n
            else:
                dups = {str(d): int(k) for d, k in self._run(_DUPLICATES, dup_window)}
                inserted = int(self._run(_INSERT, ())[0][0])
            self._con.execute(_LATEST)
            self._con.commit()
        except duckdb.Error as err:
            self._con.rollback()
            raise StoreError(f"DuckDB store {self.path}: {err}") from err
        return WriteResult(inserted, dups)

    def write_rows(self, batch: ReadingBatch) -> int:
        """Row-by-row insertion (one statement per reading): the baseline that benchmarks compare with."""
        tag_cols = self._tags.columns(batch.tags)
        marks = ", ".join("?" for _ in sql.READING_COLUMNS)
        stmt = f"INSERT INTO readings VALUES ({marks}) ON CONFLICT DO NOTHING"

        def work() -> int:
            for i in range(len(batch)):
                row = (batch.device_id[i], batch.metric[i], float(batch.t_s[i]), float(batch.value[i]),
                       batch.quality[i], *(c[i] for c in tag_cols))  # fmt: skip
                self._con.execute(stmt, row)
            return len(batch)

        n: int = self._tx(work)
        return n

    def latest(self, device_ids: Sequence[str] | None = None, metrics: Sequence[str] | None = None) -> list[Reading]:
        """The newest reading per device and metric, ordered by device and metric."""
        return self.latest_batch(device_ids, metrics).to_readings()

    def latest_batch(
        self, device_ids: Sequence[str] | None = None, metrics: Sequence[str] | None = None
    ) -> ReadingBatch:
        """The newest reading per device and metric, as columns."""
        where, params = [], []
        if device_ids is not None:
            where.append("list_contains(?::VARCHAR[], device_id)")
            params.append(list(device_ids))
        if metrics is not None:
            where.append("list_contains(?::VARCHAR[], metric)")
            params.append(list(metrics))
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        stmt = f"SELECT device_id, metric, value, t_s, quality FROM latest{cond}"
        # fetchnumpy is several times faster than fetchall for 10k+ rows
        cols = self._read(lambda: self._con.execute(stmt, params).fetchnumpy())
        return sql.latest_columns(*(np.asarray(cols[c]) for c in ("device_id", "metric", "value", "t_s", "quality")))

    def range(self, device_id: str, metric: str, start_s: float, end_s: float, step_s: float) -> list[Bucket]:
        """Min/mean/max per bucket."""
        return self._read(lambda: sql.range_buckets(self._run, device_id, metric, start_s, end_s, step_s))

    def aggregate_by_tag(self, metric: str, tag: str, start_s: float, end_s: float) -> list[TagAggregate]:
        """A metric per tag value."""
        return self._read(lambda: sql.tag_aggregates(self._run, metric, tag, start_s, end_s))

    def training_set(self, start_s: float, end_s: float, metrics: Sequence[str] | None = None) -> ReadingBatch:
        """Raw readings for retraining."""
        return self._read(lambda: sql.training_rows(self._run, start_s, end_s, metrics))

    def count(self) -> int:
        """Raw readings stored."""
        return int(self._read(lambda: self._run("SELECT count(*) FROM readings", ()))[0][0])

    def apply_retention(
        self, now_s: float, raw_keep_s: float, rollup_step_s: float, rollup_keep_s: float
    ) -> RetentionResult:
        """Roll up and delete old data in one transaction."""
        return self._tx(lambda: sql.retention(self._run, now_s, raw_keep_s, rollup_step_s, rollup_keep_s))

    def append_journal(self, entry: JournalRecord) -> None:
        """Append one journal entry."""
        self._tx(lambda: sql.journal_insert(self._run, entry))

    def append_journal_many(self, entries: Sequence[JournalRecord]) -> None:
        """Append many journal entries in one transaction (all or none).

        Through a pandas frame scanned by DuckDB, as readings are: a layer of 1 500 outlet
        commands journals 3 000 rows before it is sent, which took 0.33 s as parameterised
        VALUES and 13 ms this way (a stall the whole loop waited on).
        """
        if not entries:
            return
        frame = _journal_frame(entries)
        with self._lock:
            self._con.register("journal_df", frame)
            try:
                self._con.begin()
                self._con.execute(
                    f"INSERT INTO journal SELECT {_JOURNAL_COLUMNS} FROM journal_df ON CONFLICT DO NOTHING"
                )
                self._con.commit()
            except duckdb.Error as err:
                self._con.rollback()
                raise StoreError(f"DuckDB store {self.path}: {err}") from err
            finally:
                self._con.unregister("journal_df")

    def journal(self, since_s: float = 0.0, limit: int = 1000) -> list[JournalEntry]:
        """Journal entries since ``since_s``."""
        return self._read(lambda: sql.journal_select(self._run, since_s, limit))

    def save_model(
        self, name: str, version: str, blob: bytes, meta: Mapping[str, object], t_s: float | None = None
    ) -> None:
        """Store one model version."""
        when = time.time() if t_s is None else t_s
        self._tx(lambda: sql.model_upsert(self._run, name, version, blob, meta, when))

    def latest_model(self, name: str) -> ModelRecord | None:
        """The newest version of a model."""
        return self._read(lambda: sql.model_latest(self._run, name))

    def close(self) -> None:
        """Checkpoint and close the file."""
        with self._lock:
            self._con.close()
