"""SQL shared by the DuckDB and PostgreSQL backends: versioned migrations and the read queries.

Both backends speak the same SQL here (``?`` placeholders; the PostgreSQL backend rewrites
them to ``%s``). Only bulk loading and list parameters differ, and live in each backend.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from wattwise.errors import StoreError
from wattwise.store.base import (
    TAG_COLUMNS,
    Bucket,
    JournalEntry,
    JournalRecord,
    ModelRecord,
    RetentionResult,
    TagAggregate,
)
from wattwise.telemetry.batch import ReadingBatch

Row = tuple[Any, ...]
Run = Callable[[str, Sequence[object]], list[Row]]
"""Execute one statement with parameters and return its rows (empty for DML)."""

_TAG_DDL = ", ".join(f"{c} TEXT" for c in TAG_COLUMNS)
READING_COLUMNS: tuple[str, ...] = ("device_id", "metric", "t_s", "value", "quality", *TAG_COLUMNS, "tags")

# (version, statements for duckdb, statements for postgres). Append only; never edit a shipped one.
MIGRATIONS: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        1,
        common := (
            "CREATE TABLE readings (device_id TEXT NOT NULL, metric TEXT NOT NULL, t_s DOUBLE PRECISION NOT NULL,"
            f" value DOUBLE PRECISION NOT NULL, quality TEXT NOT NULL, {_TAG_DDL}, tags TEXT,"
            " PRIMARY KEY (device_id, metric, t_s))",
            "CREATE TABLE latest (device_id TEXT NOT NULL, metric TEXT NOT NULL, t_s DOUBLE PRECISION NOT NULL,"
            " value DOUBLE PRECISION NOT NULL, quality TEXT NOT NULL, PRIMARY KEY (device_id, metric))",
            "CREATE TABLE rollups (device_id TEXT NOT NULL, metric TEXT NOT NULL, bucket_s DOUBLE PRECISION NOT NULL,"
            " step_s DOUBLE PRECISION NOT NULL, min_value DOUBLE PRECISION NOT NULL,"
            " max_value DOUBLE PRECISION NOT NULL, sum_value DOUBLE PRECISION NOT NULL, n BIGINT NOT NULL,"
            " PRIMARY KEY (device_id, metric, bucket_s))",
            "CREATE TABLE journal (command_id TEXT NOT NULL, t_s DOUBLE PRECISION NOT NULL, phase TEXT NOT NULL,"
            " kind TEXT NOT NULL, target_id TEXT NOT NULL, value DOUBLE PRECISION, reason TEXT NOT NULL,"
            " decision_id TEXT NOT NULL, actor TEXT NOT NULL, fencing_token BIGINT, message TEXT NOT NULL,"
            " PRIMARY KEY (command_id, phase, t_s))",
            "CREATE TABLE models (name TEXT NOT NULL, version TEXT NOT NULL, t_s DOUBLE PRECISION NOT NULL,"
            " blob BYTEA NOT NULL, meta TEXT NOT NULL, PRIMARY KEY (name, version))",
        ),
        common,
    ),
    # PostgreSQL serves range scans over all devices (retention, training export) from an index on
    # time; DuckDB prunes by zone maps instead, and an extra index there would only slow ingest.
    (2, (), ("CREATE INDEX IF NOT EXISTS readings_t_s ON readings (t_s)", "CREATE INDEX journal_t_s ON journal (t_s)")),
)
LATEST_VERSION = MIGRATIONS[-1][0]


def migrate(run: Run, dialect: str) -> int:
    """Apply every migration not yet applied; return the schema version."""
    run("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, note TEXT)", ())
    done = {int(r[0]) for r in run("SELECT version FROM schema_migrations", ())}
    for version, duck, pg in MIGRATIONS:
        if version in done:
            continue
        for statement in duck if dialect == "duckdb" else pg:
            run(statement, ())
        run("INSERT INTO schema_migrations (version, note) VALUES (?, ?)", (version, dialect))
    return max(done | {v for v, _, _ in MIGRATIONS})


class TagColumns:
    """Turns each row's tag tuple into the tag columns plus canonical JSON.

    Tags repeat across rows (one set per device), so each distinct tuple is converted once
    and the columns are gathered with NumPy indexing.
    """

    def columns(self, tags: npt.NDArray[np.object_]) -> list[npt.NDArray[np.object_]]:
        """One object array per ``TAG_COLUMNS`` entry, then one for the JSON of all tags."""
        codes, uniques = pd.factorize(tags)
        table = np.empty((len(uniques) + 1, len(TAG_COLUMNS) + 1), dtype=object)
        for i, t in enumerate(uniques):
            as_dict = dict(t)
            table[i, :-1] = [as_dict.get(c) for c in TAG_COLUMNS]
            table[i, -1] = json.dumps(as_dict, sort_keys=True) if t else None
        picked = table[codes]  # code -1 (none) picks the all-None last row
        return [picked[:, j] for j in range(table.shape[1])]


def journal_insert(run: Run, e: JournalRecord) -> None:
    """Insert one journal row (ignored when the same command, phase and time exists)."""
    run(
        "INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (e.command_id, e.t_s, str(e.phase), str(e.kind), e.target_id, e.value, e.reason, e.decision_id, e.actor,
         e.fencing_token, e.message),
    )  # fmt: skip


_JOURNAL_CHUNK = 400


def journal_insert_many(run: Run, entries: Sequence[JournalRecord]) -> None:
    """Insert many journal rows with one statement per chunk (single-row inserts cost ~10 ms each)."""
    for lo in range(0, len(entries), _JOURNAL_CHUNK):
        chunk = entries[lo : lo + _JOURNAL_CHUNK]
        params: list[object] = []
        for e in chunk:
            params += [e.command_id, e.t_s, str(e.phase), str(e.kind), e.target_id, e.value, e.reason,
                       e.decision_id, e.actor, e.fencing_token, e.message]  # fmt: skip
        rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        run(f"INSERT INTO journal VALUES {rows} ON CONFLICT DO NOTHING", params)  # noqa: S608


_PHASE_ORDER = (
    "CASE phase WHEN 'planned' THEN 0 WHEN 'pending' THEN 1 WHEN 'approved' THEN 2 WHEN 'denied' THEN 3"
    " WHEN 'refused' THEN 4 WHEN 'dry-run' THEN 5 WHEN 'sent' THEN 6 WHEN 'acked' THEN 7 WHEN 'failed' THEN 8"
    " ELSE 9 END"
)


def journal_select(run: Run, since_s: float, limit: int) -> list[JournalEntry]:
    """Journal entries since ``since_s``, oldest first."""
    rows = run(
        "SELECT command_id, t_s, phase, kind, target_id, value, reason, decision_id, actor, fencing_token, message"
        f" FROM journal WHERE t_s >= ? ORDER BY t_s, {_PHASE_ORDER}, command_id LIMIT ?",  # noqa: S608
        (since_s, limit),
    )
    return [JournalEntry(*r) for r in rows]


def model_upsert(run: Run, name: str, version: str, blob: bytes, meta: Mapping[str, object], t_s: float) -> None:
    """Save one model version."""
    text = json.dumps(dict(meta), sort_keys=True)
    run("DELETE FROM models WHERE name = ? AND version = ?", (name, version))
    run("INSERT INTO models VALUES (?, ?, ?, ?, ?)", (name, version, t_s, blob, text))


def model_latest(run: Run, name: str) -> ModelRecord | None:
    """The newest version of a model."""
    rows = run("SELECT name, version, t_s, blob, meta FROM models WHERE name = ? ORDER BY t_s DESC LIMIT 1", (name,))
    if not rows:
        return None
    n, v, t, blob, meta = rows[0]
    return ModelRecord(n, v, float(t), bytes(blob), json.loads(meta))


def range_buckets(run: Run, device_id: str, metric: str, start_s: float, end_s: float, step_s: float) -> list[Bucket]:
    """Min/mean/max per bucket over raw readings and roll-ups together.

    Buckets are aligned to multiples of ``step_s`` since the epoch (as roll-ups are), so a
    bucket's ``t_s`` is ``floor(t / step_s) * step_s``.
    """
    if not step_s > 0:
        raise StoreError(f"step_s must be positive, got {step_s}")
    rows = run(
        "WITH src AS ("
        " SELECT t_s, value AS lo, value AS hi, value AS total, 1 AS n FROM readings"
        "  WHERE device_id = ? AND metric = ? AND t_s >= ? AND t_s < ?"
        " UNION ALL"
        " SELECT bucket_s, min_value, max_value, sum_value, n FROM rollups"
        "  WHERE device_id = ? AND metric = ? AND bucket_s >= ? AND bucket_s < ?)"
        " SELECT floor(t_s / ?) AS b, min(lo), sum(total) / sum(n), max(hi), sum(n)"
        " FROM src GROUP BY 1 ORDER BY 1",
        (device_id, metric, start_s, end_s, device_id, metric, start_s, end_s, step_s),
    )
    return [Bucket(float(b) * step_s, float(lo), float(mean), float(hi), int(n)) for b, lo, mean, hi, n in rows]


def tag_aggregates(run: Run, metric: str, tag: str, start_s: float, end_s: float) -> list[TagAggregate]:
    """A metric aggregated per value of one tag column."""
    if tag not in TAG_COLUMNS:
        raise StoreError(f"tag {tag!r} is not aggregatable; use one of {', '.join(TAG_COLUMNS)}")
    rows = run(
        "SELECT tag, sum(n), count(*), min(lo), sum(total) / sum(n), max(hi), sum(total / n) FROM ("
        f" SELECT {tag} AS tag, device_id, count(*) AS n, min(value) AS lo, max(value) AS hi, sum(value) AS total"
        f" FROM readings WHERE metric = ? AND t_s >= ? AND t_s < ? AND {tag} IS NOT NULL GROUP BY 1, 2) q"
        " GROUP BY 1 ORDER BY 1",
        (metric, start_s, end_s),
    )
    return [
        TagAggregate(str(v), int(n), int(d), float(lo), float(m), float(hi), float(s)) for v, n, d, lo, m, hi, s in rows
    ]


def training_rows(run: Run, start_s: float, end_s: float, metrics: Sequence[str] | None) -> ReadingBatch:
    """Raw readings in a time range as a batch (tags restored from their JSON)."""
    sql = "SELECT device_id, metric, value, t_s, quality, tags FROM readings WHERE t_s >= ? AND t_s < ?"
    params: list[object] = [start_s, end_s]
    if metrics is not None:
        sql += f" AND metric IN ({', '.join('?' for _ in metrics)})" if metrics else " AND FALSE"
        params.extend(metrics)
    rows = run(sql + " ORDER BY t_s, device_id, metric", params)
    tags = [tuple(sorted(json.loads(r[5]).items())) if r[5] else () for r in rows]
    return ReadingBatch.from_columns(
        [r[0] for r in rows],
        [r[1] for r in rows],
        np.array([r[2] for r in rows], dtype=np.float64),
        np.array([r[3] for r in rows], dtype=np.float64),
        [r[4] for r in rows],
        tags,
    )


def latest_columns(
    device_id: npt.ArrayLike, metric: npt.ArrayLike, value: npt.ArrayLike, t_s: npt.ArrayLike, quality: npt.ArrayLike
) -> ReadingBatch:
    """Columns of the ``latest`` table as a batch ordered by device, then metric."""
    dev = np.asarray(device_id, dtype=object)
    met = np.asarray(metric, dtype=object)
    dev_rank = pd.factorize(dev, sort=True)[0]
    met_rank = pd.factorize(met, sort=True)[0]
    order = np.lexsort((met_rank, dev_rank))
    n = len(order)
    return ReadingBatch(
        dev[order],
        met[order],
        np.asarray(value, dtype=np.float64)[order],
        np.asarray(t_s, dtype=np.float64)[order],
        np.asarray(quality, dtype=object)[order],
        np.fromiter((() for _ in range(n)), dtype=object, count=n),
    )


def retention(run: Run, now_s: float, raw_keep_s: float, step_s: float, rollup_keep_s: float) -> RetentionResult:
    """Roll old raw readings into buckets (merging partial buckets), delete them, drop old roll-ups."""
    if not step_s > 0:
        raise StoreError(f"rollup_step_s must be positive, got {step_s}")
    cut_s = now_s - raw_keep_s
    buckets = run(
        "SELECT count(*) FROM (SELECT 1 FROM readings WHERE t_s < ? GROUP BY device_id, metric, floor(t_s / ?)) q",
        (cut_s, step_s),
    )[0][0]
    raw = run("SELECT count(*) FROM readings WHERE t_s < ?", (cut_s,))[0][0]
    run(
        "INSERT INTO rollups SELECT device_id, metric, b * ?, ?, min(value), max(value), sum(value), count(*)"
        " FROM (SELECT device_id, metric, floor(t_s / ?) AS b, value FROM readings WHERE t_s < ?) q"
        " GROUP BY device_id, metric, b"
        " ON CONFLICT (device_id, metric, bucket_s) DO UPDATE SET"
        " min_value = least(rollups.min_value, excluded.min_value),"
        " max_value = greatest(rollups.max_value, excluded.max_value),"
        " sum_value = rollups.sum_value + excluded.sum_value, n = rollups.n + excluded.n",
        (step_s, step_s, step_s, cut_s),
    )
    run("DELETE FROM readings WHERE t_s < ?", (cut_s,))
    old = 0
    if math.isfinite(rollup_keep_s):
        old = run("SELECT count(*) FROM rollups WHERE bucket_s < ?", (now_s - rollup_keep_s,))[0][0]
        run("DELETE FROM rollups WHERE bucket_s < ?", (now_s - rollup_keep_s,))
    return RetentionResult(int(buckets), int(raw), int(old))
