"""``wattwise store-retention`` rolls up old readings of the configured store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from wattwise.cli import app
from wattwise.model.clock import WallClock
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.telemetry.batch import ReadingBatch


def test_store_retention_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cli.duckdb"
    store = DuckDBStore(path)
    now_s = WallClock().now_s()
    t = np.concatenate([now_s - 10 * 86400 + np.arange(100.0), now_s - 60 + np.arange(10.0)])
    store.write(ReadingBatch.from_columns(["ups-a"] * 110, ["power_w"] * 110, np.full(110, 5.0), t))
    store.close()
    monkeypatch.setenv("WATTWISE_DUCKDB_PATH", str(path))
    result = CliRunner().invoke(app, ["store-retention", "--raw-keep-s", "86400", "--rollup-step-s", "3600"])
    assert result.exit_code == 0, result.output
    assert "rolled 100 readings into" in result.output
    again = DuckDBStore(path)
    assert again.count() == 10
    assert sum(b.count for b in again.range("ups-a", "power_w", now_s - 11 * 86400, now_s, 86400.0)) == 110
    again.close()
