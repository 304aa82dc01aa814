"""``wattwise train``: held-out metrics, versioned files or store rows, no overwrite, clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from control.model_support import SITE_FILE, filled_file
from wattwise.cli import app
from wattwise.cli.train import FileModelRegistry
from wattwise.control.model_registry import StoreModelRegistry
from wattwise.errors import PredictionError
from wattwise.predict.base import Forecaster
from wattwise.predict.naive import SeasonalNaiveForecaster
from wattwise.predict.registry import load_model
from wattwise.store.duckdb_store import DuckDBStore


def _csv(tmp_path: Path, n: int = 6 * 144) -> Path:
    rng = np.random.default_rng(2)
    t = 1_700_000_000 + 600.0 * np.arange(n)
    rows = []
    for group in ("a", "b"):
        v = 1000 + 200 * np.sin(2 * np.pi * t / 86_400) + rng.normal(0, 10, n)
        rows.append(pd.DataFrame({"t_s": t, "value": v, "feed": group}))
    path = tmp_path / "power.csv"
    pd.concat(rows).to_csv(path, index=False)
    return path


def test_train_saves_versions_with_training_range_and_metrics(tmp_path: Path) -> None:
    data, reg_dir = _csv(tmp_path), tmp_path / "models"
    args = ["train", str(data), "--model", "seasonal-naive", "--group-col", "feed", "--horizon-s", "3600"]
    args += ["--registry", str(reg_dir)]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    reg = FileModelRegistry(reg_dir)
    assert reg.versions("demand/a") == [1, 2]
    rec = reg.latest("demand/a")
    assert rec is not None and rec.version == 2
    meta = dict(rec.meta)
    assert float(meta["eval_test_start_s"]) > 1_700_000_000  # metrics come from a held-out tail
    assert float(meta["train_end_s"]) == pytest.approx(1_700_000_000 + 600.0 * (6 * 144 - 1))
    assert 0.0 < float(meta["eval_mape_pct"]) < 100.0
    model = load_model(rec.blob)
    assert isinstance(model, SeasonalNaiveForecaster)
    assert np.all(np.isfinite(model.predict(3600.0, 600.0).upper))
    assert json.loads((reg_dir / "demand" / "a" / "v0001.json").read_text())["model"] == "seasonal-naive"


def test_train_reports_too_short_series_and_exits_nonzero(tmp_path: Path) -> None:
    data = _csv(tmp_path, n=40)
    result = CliRunner().invoke(app, ["train", str(data), "--registry", str(tmp_path / "m"), "--group-col", "feed"])
    assert result.exit_code == 1
    assert "too short" in result.output


def test_file_registry_never_overwrites_and_rejects_bad_names(tmp_path: Path) -> None:
    reg = FileModelRegistry(tmp_path)
    reg.save("x", 1, b"blob", {"k": "v"})
    with pytest.raises(PredictionError):
        reg.save("x", 1, b"other", {})
    with pytest.raises(PredictionError, match="invalid"):
        reg.save("../escape", 1, b"", {})
    assert reg.latest("missing") is None


def test_train_from_the_store_saves_a_version_per_node_with_its_meta(tmp_path: Path) -> None:
    path = filled_file(tmp_path / "store.duckdb", hours=4.0)
    args = ["train", "--site", str(SITE_FILE), "--store", str(path), "--model", "holt-winters", "--horizon-s", "900"]
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert "demand/pdu-r00001-a v2: held-out MAPE" in result.output
    store = DuckDBStore(path)
    try:
        reg = StoreModelRegistry(store)
        rec = reg.latest("demand/pdu-r00001-a")
        assert rec is not None and rec.version == 2
        meta = dict(rec.meta)
        assert meta["beats_baseline"] in {"true", "false"}
        assert meta["model"] == "holt-winters" and meta["step_s"] == "60.0" and meta["horizon_s"] == "900.0"
        assert float(meta["train_start_s"]) < float(meta["eval_test_start_s"]) < float(meta["train_end_s"])
        assert float(meta["eval_persistence_mape_pct"]) > 0.0
        model = load_model(rec.blob)
        assert isinstance(model, Forecaster)
        assert np.all(np.isfinite(model.predict(900.0, 60.0).upper))
        ups = reg.latest("demand/ups-h1-a")  # trained on the UPS's output power
        assert ups is not None and ups.version == 2
    finally:
        store.close()


def test_train_from_the_store_skips_nodes_with_too_little_history_by_name(tmp_path: Path) -> None:
    path = filled_file(tmp_path / "store.duckdb", hours=0.25)
    args = ["train", "--site", str(SITE_FILE), "--store", str(path), "--model", "persistence"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1  # nothing could be trained
    assert "demand/pdu-r00001-a: skipped" in result.output
    assert "too short" in result.output
    assert "Traceback" not in result.output


def test_train_from_an_empty_store_names_the_nodes_without_readings(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    DuckDBStore(path).close()
    result = CliRunner().invoke(app, ["train", "--site", str(SITE_FILE), "--store", str(path)])
    assert result.exit_code == 1
    assert "demand/ups-h1-a: skipped: no output_power_w readings in the store" in result.output


def test_train_from_the_store_needs_a_site(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--store", str(tmp_path / "s.duckdb")])
    assert result.exit_code == 2
    assert "--site" in result.output
