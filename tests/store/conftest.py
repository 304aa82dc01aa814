"""Store fixtures: every backend, on a real DuckDB file and a real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from tests.conftest import need, port_open

from wattwise.store.base import TimeSeriesStore
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.store.postgres_store import PostgresStore

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A fresh database on the shared PostgreSQL server, dropped afterwards."""
    need(port_open("127.0.0.1", 5432), "PostgreSQL on 127.0.0.1:5432")
    name = f"ww_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


StoreFactory = Callable[[], TimeSeriesStore]


@pytest.fixture(params=["duckdb", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens (and reopens) a store of each backend on the same data."""
    opened: list[TimeSeriesStore] = []
    if request.param == "duckdb":
        path = tmp_path / "store.duckdb"

        def make() -> TimeSeriesStore:
            opened.append(DuckDBStore(path))
            return opened[-1]

    else:
        dsn = request.getfixturevalue("pg_dsn")

        def make() -> TimeSeriesStore:
            opened.append(PostgresStore(dsn))
            return opened[-1]

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> TimeSeriesStore:
    """One open store of each backend."""
    return store_factory()
