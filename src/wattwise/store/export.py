"""Training-set export: a time range of stored readings as a Parquet file for offline retraining."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from wattwise.errors import StoreError
from wattwise.store.base import TimeSeriesStore


def export_training_parquet(
    store: TimeSeriesStore, path: Path, start_s: float, end_s: float, metrics: Sequence[str] | None = None
) -> int:
    """Write ``[start_s, end_s)`` of any store to ``path`` (Parquet, zstd); return the row count.

    Columns: ``device_id``, ``metric``, ``t_s``, ``value``, ``quality``, ``tags`` (JSON text).
    """
    batch = store.training_set(start_s, end_s, metrics)
    frame = pd.DataFrame(
        {
            "device_id": batch.device_id,
            "metric": batch.metric,
            "t_s": batch.t_s,
            "value": batch.value,
            "quality": batch.quality,
            "tags": [json.dumps(dict(t), sort_keys=True) for t in batch.tags],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.register("training", frame)
        target = str(path).replace("'", "''")
        con.execute(f"COPY training TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
    except duckdb.Error as err:
        raise StoreError(f"cannot write training set to {path}: {err}") from err
    finally:
        con.close()
    return len(batch)
