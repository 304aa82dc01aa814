"""``wattwise train``: held-out metrics, versioned files, no overwrite, clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from wattwise.cli import app
from wattwise.cli.train import FileModelRegistry
from wattwise.errors import PredictionError
from wattwise.predict.naive import SeasonalNaiveForecaster
from wattwise.predict.registry import load_model


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
