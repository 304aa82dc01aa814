"""``wattwise train``: periodic offline retraining of demand forecasters into a versioned registry.

For each series (one per ``--group-col`` value, or the whole file) it

1. holds out the last ``--test-frac`` of the history, fits the chosen model on the rest and
   scores it at ``--horizon-s`` against persistence on the held-out range (never on the
   training range);
2. refits the same configuration on the full history;
3. saves it as the next version ``<registry>/<name>/v0001.pkl`` with a JSON sidecar holding
   the training range, the held-out metrics and the configuration.

A rich progress bar shows the series done. The file-backed registry lives here, not in
``wattwise.predict``, because that layer does no I/O.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wattwise.config import Settings
from wattwise.errors import PredictionError
from wattwise.predict.backtest import holdout_split, score_paths
from wattwise.predict.base import Forecaster, ModelRecord, Series
from wattwise.predict.naive import SeasonalNaiveForecaster
from wattwise.predict.registry import dump_model

logger = logging.getLogger(__name__)
console = Console()

_VERSION_FILE = re.compile(r"^v(\d{4,})\.pkl$")


class FileModelRegistry:
    """A :class:`~wattwise.predict.base.ModelRegistry` in a directory: ``<root>/<name>/vNNNN.pkl`` + ``.json``.

    Args:
        root: Directory holding one sub-directory per model name (``/`` in a name nests).
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, name: str) -> Path:
        if not name or ".." in name.split("/") or name.startswith("/"):
            raise PredictionError(f"invalid model name {name!r}")
        return self.root / name

    def versions(self, name: str) -> list[int]:
        """Stored versions of ``name``, ascending."""
        d = self._dir(name)
        if not d.is_dir():
            return []
        found = (_VERSION_FILE.match(p.name) for p in d.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def save(self, name: str, version: int, blob: bytes, meta: dict[str, str]) -> None:
        """Write a new version; refuses to overwrite one.

        Raises:
            PredictionError: The version exists or is not positive.
        """
        d = self._dir(name)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"v{version:04d}.pkl"
        if version < 1 or path.exists():
            raise PredictionError(f"{name} version {version} exists or is invalid")
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        tmp.replace(path)  # the .pkl appears last, so a listed version is complete

    def latest(self, name: str) -> ModelRecord | None:
        """The highest stored version of ``name``, or ``None``."""
        versions = self.versions(name)
        if not versions:
            return None
        v = versions[-1]
        base = self._dir(name) / f"v{v:04d}"
        meta = json.loads(base.with_suffix(".json").read_text())
        return ModelRecord(name, v, base.with_suffix(".pkl").read_bytes(), tuple(sorted(meta.items())))


MODELS = ("lightgbm", "holt-winters", "seasonal-naive", "persistence", "lstm")


def _make(model: str, seed: int, horizon_s: float) -> Forecaster:
    """Build a forecaster; heavy libraries are imported here so ``wattwise --help`` stays fast."""
    if model == "lightgbm":
        from wattwise.predict.gbm import LightGbmForecaster

        return LightGbmForecaster(max_horizon_s=horizon_s, seed=seed)
    if model == "holt-winters":
        from wattwise.predict.holt_winters import HoltWintersForecaster

        return HoltWintersForecaster(86_400.0, max_horizon_s=horizon_s, seed=seed)
    if model == "lstm":
        from wattwise.predict.lstm import LstmForecaster  # the optional `ml` extra

        return LstmForecaster(max_horizon_s=horizon_s, seed=seed)
    season_s = 86_400.0 if model == "seasonal-naive" else None
    return SeasonalNaiveForecaster(season_s, max_horizon_s=horizon_s, seed=seed)


def load_series(
    path: Path, time_col: str, value_col: str, time_scale: float, group_col: str | None
) -> dict[str, Series]:
    """Read a CSV (optionally gzipped) into one series per group.

    Raises:
        typer.BadParameter: Missing columns.
    """
    import pandas as pd  # imported here so that `wattwise --help` stays fast

    df = pd.read_csv(path)
    for col in (time_col, value_col, *((group_col,) if group_col else ())):
        if col not in df.columns:
            raise typer.BadParameter(f"{path} has no column {col!r} (columns: {', '.join(df.columns)})")
    groups = df.groupby(group_col, sort=True) if group_col else [(path.name.split(".")[0], df)]
    out = {}
    for key, part in groups:
        part = part.sort_values(time_col).drop_duplicates(time_col)
        t_s = part[time_col].to_numpy(np.float64) * time_scale
        out[str(key)] = Series(t_s=t_s, value=part[value_col].to_numpy(np.float64))
    return out


def train_one(
    series: Series, model: str, seed: int, horizon_s: float, test_frac: float
) -> tuple[Forecaster, dict[str, str]]:
    """Held-out evaluation against persistence, then a refit on the full history."""
    split = holdout_split(series, test_frac)
    scores = {}
    for label, name in (("model", model), ("persistence", "persistence")):
        f = _make(name, seed, horizon_s)
        f.fit(split.train)
        paths = f.predict_paths(series, split.origins_t_s(series), horizon_s)
        scores[label] = score_paths(series, paths, horizon_s, split, f.training_range)
    final = _make(model, seed, horizon_s)
    final.fit(series)
    meta = {
        "model": model,
        "class": type(final).__name__,
        "seed": str(seed),
        "horizon_s": str(horizon_s),
        "train_start_s": str(final.training_range.start_s),
        "train_end_s": str(final.training_range.end_s),
        "eval_test_start_s": str(split.test_start_s),
        "eval_test_end_s": str(split.test_end_s),
        "eval_mape_pct": f"{scores['model'].mape_pct:.4f}",
        "eval_persistence_mape_pct": f"{scores['persistence'].mape_pct:.4f}",
        "eval_coverage_frac": f"{scores['model'].coverage_frac:.4f}",
        "eval_interval_level": str(final.level),
    }
    return final, meta


def train(
    data: Annotated[Path, typer.Argument(help="CSV (or .csv.gz) with a time and a value column")],
    name: Annotated[str, typer.Option(help="Model name prefix in the registry")] = "demand",
    model: Annotated[str, typer.Option(help="lightgbm | holt-winters | seasonal-naive | persistence | lstm")] = (
        "lightgbm"
    ),
    time_col: Annotated[str, typer.Option(help="Time column")] = "t_s",
    value_col: Annotated[str, typer.Option(help="Value column (SI unit)")] = "value",
    time_scale: Annotated[float, typer.Option(help="Multiply the time column by this to get seconds")] = 1.0,
    group_col: Annotated[str | None, typer.Option(help="Train one model per value of this column")] = None,
    horizon_s: Annotated[float, typer.Option(help="Forecast horizon, seconds")] = 86_400.0,
    test_frac: Annotated[float, typer.Option(help="Held-out fraction for the recorded metrics")] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of every random choice")] = 0,
    registry: Annotated[Path | None, typer.Option(help="Registry directory (default <data_dir>/models)")] = None,
) -> None:
    """Retrain demand forecasters and save each as the next version in the model registry."""
    if model not in MODELS:
        raise typer.BadParameter(f"unknown model {model!r}")
    reg = FileModelRegistry(registry if registry is not None else Settings().data_dir / "models")
    all_series = load_series(data, time_col, value_col, time_scale, group_col)
    failed = 0
    t0 = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("training", total=len(all_series))
        for key, series in all_series.items():
            progress.update(task, description=f"training {key}")
            full = f"{name}/{key}"
            try:
                fitted, meta = train_one(series, model, seed, horizon_s, test_frac)
            except PredictionError as err:
                failed += 1
                console.print(f"[red]{full}: {err}[/red]")
                progress.advance(task)
                continue
            version = max(reg.versions(full), default=0) + 1
            reg.save(full, version, dump_model(fitted), meta)
            console.print(
                f"{full} v{version}: held-out MAPE {float(meta['eval_mape_pct']):.2f} % "
                f"(persistence {float(meta['eval_persistence_mape_pct']):.2f} %), "
                f"coverage {float(meta['eval_coverage_frac']):.3f}"
            )
            progress.advance(task)
    console.print(f"saved to {reg.root} in {time.perf_counter() - t0:.1f} s")
    if failed:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command."""
    app.command()(train)
