"""Helpers for the model-registry tests: a store filled from a short twin run, versions saved into it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from conftest import EXAMPLES, need, port_open
from wattwise.control.model_registry import StoreModelRegistry, load_store_series, model_name
from wattwise.decide.index import SiteIndex
from wattwise.model.loader import load_site
from wattwise.model.site import Site
from wattwise.predict.registry import dump_model
from wattwise.predict.training import train_one
from wattwise.sim.twin import Twin
from wattwise.store.base import TimeSeriesStore
from wattwise.telemetry.batch import ReadingBatch

SITE_FILE = EXAMPLES / "single-rack.yaml"
START_S = 1_700_000_000.0
NODE_KINDS = ("feed", "ats", "ups", "pdu")


def site() -> Site:
    """The single-rack example site."""
    return load_site(SITE_FILE)


def fill_from_twin(store: TimeSeriesStore, hours: float, start_s: float = START_S) -> float:
    """Store the upstream nodes' readings of a twin run, one poll a minute; returns the end time, s."""
    twin = Twin(site(), seed=0, start_s=start_s, record_timeline=False)
    for _ in range(int(hours * 60)):
        twin.run_for(60.0, dt_s=20.0)
        store.write(ReadingBatch.from_readings(twin.readings(kinds=NODE_KINDS)))
    return twin.t_s


def save_version(store: TimeSeriesStore, node_id: str, *, beats: bool = True, broken: bool = False) -> int:
    """Fit a Holt-Winters forecaster on the node's stored load and save it as the next version.

    ``beats`` overrides the held-out verdict; ``broken`` makes the saved model raise on predict.
    """
    series, _ = load_store_series(store, SiteIndex.from_site(site()), 60.0, 86_400.0)
    model, meta = train_one(series[node_id], "holt-winters", 0, 900.0, 0.25)
    meta["beats_baseline"] = "true" if beats else "false"
    if broken:
        model._engine.calibrator = None  # type: ignore[attr-defined]
    reg = StoreModelRegistry(store)
    name = model_name(node_id)
    version = reg.next_version(name)
    reg.save(name, version, dump_model(model), meta)
    return version


def filled_file(path: Path, hours: float) -> Path:
    """A DuckDB file holding ``hours`` of twin readings (closed again)."""
    from wattwise.store.duckdb_store import DuckDBStore

    store = DuckDBStore(path)
    try:
        fill_from_twin(store, hours)
    finally:
        store.close()
    return path


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh database on the shared PostgreSQL server (skips without one; fails in CI), dropped afterwards."""
    need(port_open("127.0.0.1", 5432), "PostgreSQL on 127.0.0.1:5432")
    name = f"ww_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
