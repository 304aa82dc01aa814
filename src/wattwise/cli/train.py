"""``wattwise train``: periodic offline retraining of demand forecasters into a versioned registry.

The history comes from a CSV file (``wattwise train DATA``: one series per ``--group-col``
value, or the whole file; saved under ``<registry>/<name>/vNNNN.pkl``), or from the store
(``wattwise train --site SITE [--store FILE]``: one series per upstream power node of the
site, its load metric averaged over ``--step-s`` buckets; saved in the store's model table as
``<name>/<node id>``, where a running controller picks up each new version).

For each series it

1. holds out the last ``--test-frac`` of the history, fits the chosen model on the rest and
   scores it at ``--horizon-s`` against persistence on the held-out range (never on the
   training range);
2. refits the same configuration on the full history;
3. saves it as the next version with metadata holding the training range, the held-out
   metrics, whether the model beat persistence there (``beats_baseline``: the controller uses
   only such versions) and the configuration.

A rich progress bar shows the series done. The file-backed registry lives here, not in
``wattwise.predict``, because that layer does no I/O.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wattwise.cli.store_cmds import open_store
from wattwise.config import Settings
from wattwise.control.model_registry import DEFAULT_PREFIX, StoreModelRegistry, load_store_series
from wattwise.decide.index import SiteIndex
from wattwise.errors import PredictionError, WattwiseError
from wattwise.model.loader import load_site
from wattwise.predict.base import ModelRecord, ModelRegistry, Series
from wattwise.predict.registry import dump_model
from wattwise.predict.training import MODELS, train_one
from wattwise.store.base import TimeSeriesStore
from wattwise.store.duckdb_store import DuckDBStore

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


@dataclass(frozen=True)
class TrainOptions:
    """How every series is trained."""

    name: str
    model: str
    seed: int
    horizon_s: float
    test_frac: float


def _next_version(reg: ModelRegistry, name: str) -> int:
    latest = reg.latest(name)
    return 1 if latest is None else latest.version + 1


def train_all(all_series: dict[str, Series], reg: ModelRegistry, opts: TrainOptions) -> tuple[int, int]:
    """Train, evaluate and save every series under a progress bar; ``(saved, failed)``."""
    saved = failed = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("training", total=len(all_series))
        for key, series in all_series.items():
            progress.update(task, description=f"training {key}")
            full = f"{opts.name}/{key}"
            try:
                fitted, meta = train_one(series, opts.model, opts.seed, opts.horizon_s, opts.test_frac)
            except PredictionError as err:
                failed += 1
                console.print(f"[red]{full}: skipped: {err}[/red]")
                progress.advance(task)
                continue
            version = _next_version(reg, full)
            reg.save(full, version, dump_model(fitted), meta)
            saved += 1
            beats = "beats" if meta["beats_baseline"] == "true" else "does not beat"
            console.print(
                f"{full} v{version}: held-out MAPE {float(meta['eval_mape_pct']):.2f} % "
                f"(persistence {float(meta['eval_persistence_mape_pct']):.2f} %, {beats} it), "
                f"coverage {float(meta['eval_coverage_frac']):.3f}"
            )
            progress.advance(task)
    return saved, failed


def _open_store(store_path: Path | None) -> TimeSeriesStore:
    """The store ``wattwise run``/``demo`` use: ``--store FILE`` (DuckDB), else the settings' store."""
    return DuckDBStore(store_path) if store_path is not None else open_store(Settings())


def _train_from_store(
    site_path: Path | None, store_path: Path | None, step_s: float, history_s: float, opts: TrainOptions
) -> None:
    if site_path is None:
        raise typer.BadParameter("training from the store needs --site (its nodes are the series)")
    try:
        site = load_site(site_path)
        store = _open_store(store_path)
    except WattwiseError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(code=2) from err
    try:
        all_series, skipped = load_store_series(store, SiteIndex.from_site(site), step_s, history_s)
        for node_id, why in skipped.items():
            console.print(f"[yellow]{opts.name}/{node_id}: skipped: {why}[/yellow]")
        t0 = time.perf_counter()
        saved, _ = train_all(all_series, StoreModelRegistry(store), opts)
    except WattwiseError as err:  # a store outage mid-run: what was saved stays saved
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(code=2) from err
    finally:
        store.close()
    console.print(f"saved {saved} model(s) to the store's model table in {time.perf_counter() - t0:.1f} s")
    if saved == 0:
        raise typer.Exit(code=1)


def train(
    data: Annotated[
        Path | None,
        typer.Argument(help="CSV (or .csv.gz) with a time and a value column; none: from the store"),
    ] = None,
    name: Annotated[str, typer.Option(help="Model name prefix in the registry")] = DEFAULT_PREFIX,
    model: Annotated[str, typer.Option(help="lightgbm | holt-winters | seasonal-naive | persistence | lstm")] = (
        "lightgbm"
    ),
    time_col: Annotated[str, typer.Option(help="Time column")] = "t_s",
    value_col: Annotated[str, typer.Option(help="Value column (SI unit)")] = "value",
    time_scale: Annotated[float, typer.Option(help="Multiply the time column by this to get seconds")] = 1.0,
    group_col: Annotated[str | None, typer.Option(help="Train one model per value of this column")] = None,
    horizon_s: Annotated[
        float | None, typer.Option(help="Forecast horizon, seconds (default 86400 from a CSV, 900 from the store)")
    ] = None,
    test_frac: Annotated[float, typer.Option(help="Held-out fraction for the recorded metrics")] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of every random choice")] = 0,
    registry: Annotated[Path | None, typer.Option(help="Registry directory (default <data_dir>/models)")] = None,
    site_path: Annotated[Path | None, typer.Option("--site", help="Site file (training from the store)")] = None,
    store_path: Annotated[
        Path | None, typer.Option("--store", help="DuckDB file to train from (default: the settings' store)")
    ] = None,
    step_s: Annotated[float, typer.Option(min=1.0, help="Bucket of the store's readings, seconds")] = 60.0,
    history_s: Annotated[float, typer.Option(min=60.0, help="History read from the store, seconds")] = 7 * 86_400.0,
) -> None:
    """Retrain demand forecasters and save each as the next version in the model registry."""
    if model not in MODELS:
        raise typer.BadParameter(f"unknown model {model!r}")
    if data is None:
        opts = TrainOptions(name, model, seed, 900.0 if horizon_s is None else horizon_s, test_frac)
        _train_from_store(site_path, store_path, step_s, history_s, opts)
        return
    opts = TrainOptions(name, model, seed, 86_400.0 if horizon_s is None else horizon_s, test_frac)
    reg = FileModelRegistry(registry if registry is not None else Settings().data_dir / "models")
    all_series = load_series(data, time_col, value_col, time_scale, group_col)
    t0 = time.perf_counter()
    _, failed = train_all(all_series, reg, opts)
    console.print(f"saved to {reg.root} in {time.perf_counter() - t0:.1f} s")
    if failed:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command."""
    app.command()(train)
