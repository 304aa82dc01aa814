"""The shared store for several controllers: PostgreSQL through psycopg 3, COPY for ingest.

A batch is copied into a per-session staging table, then moved into ``readings`` with
``ON CONFLICT DO NOTHING`` in the same transaction, so a batch is stored entirely or not at
all. A broken connection (server restart) surfaces as ``StoreError``; the next call reconnects,
and the caller (the ingest pipeline) retries the same batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import psycopg

from wattwise.errors import StoreError
from wattwise.model.values import Reading
from wattwise.store import sql
from wattwise.store.base import (
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

_COLS = ", ".join(sql.READING_COLUMNS)
_STAGING = "CREATE TEMP TABLE IF NOT EXISTS staging (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
_DUPLICATES = (
    "SELECT s.device_id, count(*) FROM staging s JOIN readings r"
    " ON r.device_id = s.device_id AND r.metric = s.metric AND r.t_s = s.t_s GROUP BY 1"
)
_INSERT = f"INSERT INTO readings ({_COLS}) SELECT {_COLS} FROM staging ON CONFLICT DO NOTHING"
_INSERT_ALL = f"INSERT INTO readings ({_COLS}) SELECT {_COLS} FROM staging"
_LATEST = (
    "INSERT INTO latest SELECT DISTINCT ON (device_id, metric) device_id, metric, t_s, value, quality FROM staging"
    " ORDER BY device_id, metric, t_s DESC ON CONFLICT (device_id, metric) DO UPDATE"
    " SET t_s = excluded.t_s, value = excluded.value, quality = excluded.quality WHERE excluded.t_s > latest.t_s"
)


class PostgresStore:
    """``TimeSeriesStore`` on a PostgreSQL database.

    Args:
        dsn: libpq connection string (``postgresql://postgres@127.0.0.1:5432/wattwise``).
        connect_timeout_s: How long one connection attempt may take.
    """

    def __init__(self, dsn: str, connect_timeout_s: float = 5.0) -> None:
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._tags = sql.TagColumns()
        self._version = self._tx(lambda: sql.migrate(self._run, "postgres"))

    # ---- connection ------------------------------------------------------------------
    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, connect_timeout=max(1, int(self.connect_timeout_s)))
            logger.info("connected to PostgreSQL store")
        return self._conn

    def _run(self, statement: str, params: Sequence[object]) -> list[sql.Row]:
        cur = self._connection().execute(statement.replace("?", "%s"), list(params))
        return list(cur.fetchall()) if cur.description else []

    def _tx(self, fn: Callable[[], T]) -> T:
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    return fn()
            except psycopg.Error as err:
                self._drop_broken()
                raise StoreError(f"PostgreSQL store: {err}") from err

    def _drop_broken(self) -> None:
        conn = self._conn
        if conn is not None and (conn.closed or conn.broken):
            conn.close()
            self._conn = None
            logger.warning("PostgreSQL store connection lost; will reconnect")

    def schema_version(self) -> int:
        """Highest migration applied."""
        return self._version

    # ---- writes ----------------------------------------------------------------------
    def _copy(self, batch: ReadingBatch) -> None:
        conn = self._connection()
        conn.execute(_STAGING)
        tag_cols = self._tags.columns(batch.tags)
        rows = zip(batch.device_id, batch.metric, batch.t_s.tolist(), batch.value.tolist(), batch.quality,
                   *tag_cols, strict=True)  # fmt: skip
        with conn.cursor().copy(f"COPY staging ({_COLS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def write(self, batch: ReadingBatch) -> WriteResult:
        """Store a batch in one transaction (COPY, then insert skipping duplicates)."""
        if len(batch) == 0:
            return WriteResult(0)

        def work() -> WriteResult:
            self._copy(batch)
            conn = self._connection()
            inserted = len(batch)
            dups: dict[str, int] = {}
            # Fast path: a plain INSERT in a savepoint (half the cost of ON CONFLICT). Only a
            # redelivery hits the key, rolls the savepoint back and pays for the join that names
            # the devices whose rows were already stored.
            try:
                with conn.transaction():
                    conn.execute(_INSERT_ALL)
            except psycopg.errors.UniqueViolation:
                dups = {str(d): int(str(n)) for d, n in self._run(_DUPLICATES, ())}
                inserted = conn.execute(_INSERT).rowcount
            self._run(_LATEST, ())
            return WriteResult(inserted, dups)

        return self._tx(work)

    def write_rows(self, batch: ReadingBatch) -> int:
        """Row-by-row insertion (one statement per reading): the baseline that benchmarks compare with."""
        tag_cols = self._tags.columns(batch.tags)
        stmt = f"INSERT INTO readings ({_COLS}) VALUES ({', '.join('%s' for _ in sql.READING_COLUMNS)})"

        def work() -> int:
            cur = self._connection().cursor()
            for i in range(len(batch)):
                row = (batch.device_id[i], batch.metric[i], float(batch.t_s[i]), float(batch.value[i]),
                       batch.quality[i], *(c[i] for c in tag_cols))  # fmt: skip
                cur.execute(stmt + " ON CONFLICT DO NOTHING", row)
            return len(batch)

        return self._tx(work)

    # ---- reads -----------------------------------------------------------------------
    def latest(self, device_ids: Sequence[str] | None = None, metrics: Sequence[str] | None = None) -> list[Reading]:
        """The newest reading per device and metric, ordered by device and metric."""
        return self.latest_batch(device_ids, metrics).to_readings()

    def latest_batch(
        self, device_ids: Sequence[str] | None = None, metrics: Sequence[str] | None = None
    ) -> ReadingBatch:
        """The newest reading per device and metric, as columns."""
        where, params = [], []
        if device_ids is not None:
            where.append("device_id = ANY(?)")
            params.append(list(device_ids))
        if metrics is not None:
            where.append("metric = ANY(?)")
            params.append(list(metrics))
        cond = f" WHERE {' AND '.join(where)}" if where else ""
        # one row of arrays in the binary protocol: psycopg decodes them in C, several times
        # faster than 10 000 row tuples
        stmt = (
            "SELECT array_agg(device_id), array_agg(metric), array_agg(value), array_agg(t_s), array_agg(quality)"
            f" FROM latest{cond}"
        ).replace("?", "%s")

        def fetch() -> tuple[object, ...] | None:
            with self._connection().cursor(binary=True) as cur:
                cur.execute(stmt, params)
                return cur.fetchone()

        row = self._tx(fetch)
        if row is None or row[0] is None:
            return ReadingBatch.empty()
        return sql.latest_columns(*row)  # type: ignore[arg-type]

    def range(self, device_id: str, metric: str, start_s: float, end_s: float, step_s: float) -> list[Bucket]:
        """Min/mean/max per bucket."""
        return self._tx(lambda: sql.range_buckets(self._run, device_id, metric, start_s, end_s, step_s))

    def aggregate_by_tag(self, metric: str, tag: str, start_s: float, end_s: float) -> list[TagAggregate]:
        """A metric per tag value."""
        return self._tx(lambda: sql.tag_aggregates(self._run, metric, tag, start_s, end_s))

    def training_set(self, start_s: float, end_s: float, metrics: Sequence[str] | None = None) -> ReadingBatch:
        """Raw readings for retraining."""
        return self._tx(lambda: sql.training_rows(self._run, start_s, end_s, metrics))

    def count(self) -> int:
        """Raw readings stored."""
        return int(str(self._tx(lambda: self._run("SELECT count(*) FROM readings", ()))[0][0]))

    def apply_retention(
        self, now_s: float, raw_keep_s: float, rollup_step_s: float, rollup_keep_s: float
    ) -> RetentionResult:
        """Roll up and delete old data in one transaction."""
        return self._tx(lambda: sql.retention(self._run, now_s, raw_keep_s, rollup_step_s, rollup_keep_s))

    # ---- journal and models ----------------------------------------------------------
    def append_journal(self, entry: JournalRecord) -> None:
        """Append one journal entry."""
        self._tx(lambda: sql.journal_insert(self._run, entry))

    def append_journal_many(self, entries: Sequence[JournalRecord]) -> None:
        """Append many journal entries in one transaction (all or none)."""
        if entries:
            self._tx(lambda: sql.journal_insert_many(self._run, entries))

    def journal(self, since_s: float = 0.0, limit: int = 1000) -> list[JournalEntry]:
        """Journal entries since ``since_s``."""
        return self._tx(lambda: sql.journal_select(self._run, since_s, limit))

    def save_model(
        self, name: str, version: str, blob: bytes, meta: Mapping[str, object], t_s: float | None = None
    ) -> None:
        """Store one model version."""
        when = time.time() if t_s is None else t_s
        self._tx(lambda: sql.model_upsert(self._run, name, version, blob, meta, when))

    def latest_model(self, name: str) -> ModelRecord | None:
        """The newest version of a model."""
        return self._tx(lambda: sql.model_latest(self._run, name))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
