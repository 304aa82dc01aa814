"""The store's model table as a versioned registry, on a real DuckDB file and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control.model_support import pg_database, site
from wattwise.control.model_registry import StoreModelRegistry, model_name, node_series
from wattwise.decide.index import SiteIndex
from wattwise.errors import PredictionError
from wattwise.predict.naive import SeasonalNaiveForecaster
from wattwise.predict.registry import dump_model, load_model
from wattwise.store.base import TimeSeriesStore
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.store.postgres_store import PostgresStore


@pytest.fixture(params=["duckdb", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TimeSeriesStore]:
    """A store of each backend (PostgreSQL: a fresh database on the shared server)."""
    if request.param == "duckdb":
        opened: TimeSeriesStore = DuckDBStore(tmp_path / "store.duckdb")
        yield opened
        opened.close()
        return
    with pg_database() as dsn:
        opened = PostgresStore(dsn)
        yield opened
        opened.close()


def test_versions_round_trip_with_their_meta_and_model(store: TimeSeriesStore) -> None:
    reg = StoreModelRegistry(store)
    name = model_name("pdu-a")
    assert reg.latest(name) is None and reg.next_version(name) == 1
    model = SeasonalNaiveForecaster(max_horizon_s=3600.0)
    for version in (1, 2):
        reg.save(name, version, dump_model(model), {"beats_baseline": "true", "eval_mape_pct": f"{version}.5"})
    reg.save(model_name("pdu-b"), 1, b"other", {})
    rec = reg.latest(name)
    assert rec is not None
    assert (rec.name, rec.version) == ("demand/pdu-a", 2)
    assert dict(rec.meta) == {"beats_baseline": "true", "eval_mape_pct": "2.5"}
    assert isinstance(load_model(rec.blob), SeasonalNaiveForecaster)
    assert reg.next_version(name) == 3


def test_a_version_is_never_overwritten_or_reused(store: TimeSeriesStore) -> None:
    reg = StoreModelRegistry(store)
    reg.save("demand/x", 1, b"first", {})
    reg.save("demand/x", 2, b"second", {})
    for version in (0, 1, 2):
        with pytest.raises(PredictionError, match="exists or is invalid"):
            reg.save("demand/x", version, b"again", {})
    rec = reg.latest("demand/x")
    assert rec is not None and (rec.version, rec.blob) == (2, b"second")


def test_a_foreign_version_label_is_a_clear_error(store: TimeSeriesStore) -> None:
    store.save_model("demand/y", "2024-01-01", b"x", {})
    with pytest.raises(PredictionError, match="not an integer"):
        StoreModelRegistry(store).latest("demand/y")


def test_each_node_is_forecast_on_its_load_metric() -> None:
    pairs = dict(node_series(SiteIndex.from_site(site())))
    assert pairs["pdu-r00001-a"] == "power_w"
    assert pairs["utility-a"] == "power_w"
    assert pairs["ups-h1-a"] == "output_power_w"  # what the UPS feeds, not its input with losses
    assert list(pairs) == list(SiteIndex.from_site(site()).node_ids)  # node_load_upper_w's order
