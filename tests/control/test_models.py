"""The controller picks learned node forecasters up from the store's registry while it runs.

A real DuckDB store is filled from a short twin run; versions are fitted on it and saved into
its model table; the real controller (twin driver, default policies, observe mode) ticks on the
twin's clock.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from control.model_support import SITE_FILE, fill_from_twin, pg_database, save_version, site
from wattwise.act.base import Mode
from wattwise.cli import app
from wattwise.control.assemble import Assembly, assemble
from wattwise.control.loop import TickReport
from wattwise.control.model_registry import StoreModelRegistry, model_name
from wattwise.control.models import NodeForecasts
from wattwise.control.twin_run import TwinClock
from wattwise.decide.index import SiteIndex
from wattwise.errors import StoreError
from wattwise.predict.base import ModelRecord
from wattwise.sim.driver import TwinDriver
from wattwise.sim.twin import Twin
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.store.postgres_store import PostgresStore

NODE, OTHER = "pdu-r00001-a", "pdu-r00001-b"
RELOAD_S = 30.0


@pytest.fixture(scope="module")
def history_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """Four hours of node readings (enough for a 900 s horizon at 60 s steps), and their end time."""
    path = tmp_path_factory.mktemp("history") / "store.duckdb"
    store = DuckDBStore(path)
    try:
        end_s = fill_from_twin(store, hours=4.0)
    finally:
        store.close()
    return path, end_s


@pytest.fixture
def store(history_file: tuple[Path, float], tmp_path: Path) -> Iterator[DuckDBStore]:
    """A copy of the filled store for one test."""
    path = tmp_path / "store.duckdb"
    shutil.copy(history_file[0], path)
    opened = DuckDBStore(path)
    yield opened
    opened.close()


class SlowRegistry(StoreModelRegistry):
    """The store's registry behind a slow link: once ``slow``, a check's first read takes 2 s."""

    slow = False

    def latest(self, name: str) -> ModelRecord | None:
        if self.slow and name == model_name("utility-a"):
            time.sleep(2.0)
        return super().latest(name)


@dataclass
class Running:
    """A controller on a twin that continues where the stored history ends."""

    twin: Twin
    assembly: Assembly
    forecasts: NodeForecasts
    loop: asyncio.AbstractEventLoop

    def tick(self, advance_s: float = 5.0) -> TickReport:
        self.twin.run_for(advance_s, dt_s=5.0)
        return self.loop.run_until_complete(self.assembly.controller.tick())

    def settle(self) -> TickReport:
        """Tick (a check starts when due), wait for the check, tick again (its result is installed)."""
        self.tick()
        self.forecasts.join(10.0)
        return self.tick()

    def upper_w(self, node_id: str) -> float:
        forecast = self.assembly.planner.last_forecast
        assert forecast is not None
        if forecast.node_load_upper_w is None:  # no node has a usable model
            return float("nan")
        return float(forecast.node_load_upper_w[self.assembly.index.node_ids.index(node_id)])

    def status(self, node_id: str) -> tuple[str, int | None, str]:
        s = next(s for s in self.forecasts.status() if s.node_id == node_id)
        return s.source, s.version, s.message


@pytest.fixture
def running(store: DuckDBStore, history_file: tuple[Path, float]) -> Iterator[Running]:
    s = site()
    twin = Twin(s, seed=0, start_s=history_file[1], record_timeline=False)
    forecasts = NodeForecasts(SiteIndex.from_site(s), StoreModelRegistry(store), store, reload_s=RELOAD_S)
    assembly = assemble(s, [TwinDriver(twin)], store, TwinClock(twin), Mode.OBSERVE, node_forecasts=forecasts)
    loop = asyncio.new_event_loop()
    yield Running(twin, assembly, forecasts, loop)
    forecasts.join(10.0)
    loop.close()


def test_controller_picks_up_a_version_written_while_it_runs(store: DuckDBStore, running: Running) -> None:
    assert save_version(store, NODE) == 1
    running.settle()
    assert running.status(NODE) == ("model", 1, "in use")
    first_w = running.upper_w(NODE)
    assert 500.0 < first_w < 5_000.0  # the PDU draws ~1.3 kW in this site
    assert np.isnan(running.upper_w(OTHER))  # no model registered: the baseline
    assert running.status(OTHER)[0] == "baseline"
    for _ in range(3):
        assert running.tick().decided
    assert save_version(store, NODE) == 2  # a retraining run finishes while the controller runs
    running.tick(RELOAD_S)  # the next check is due: it starts off the loop
    running.forecasts.join(10.0)
    running.tick()
    assert running.status(NODE) == ("model", 2, "in use")
    assert np.isfinite(running.upper_w(NODE))


def test_a_version_that_did_not_beat_persistence_is_not_used(store: DuckDBStore, running: Running) -> None:
    save_version(store, NODE, beats=False)
    running.settle()
    source, version, message = running.status(NODE)
    assert (source, version) == ("baseline", 1)
    assert "did not beat persistence" in message
    assert np.isnan(running.upper_w(NODE))


def test_a_raising_model_is_a_status_and_the_loop_keeps_ticking(store: DuckDBStore, running: Running) -> None:
    save_version(store, NODE, broken=True)
    save_version(store, OTHER)
    running.settle()
    source, version, message = running.status(NODE)
    assert (source, version) == ("baseline", 1)
    assert message.startswith("failed: AttributeError")
    assert f"forecast {NODE}" in running.assembly.planner.policy_errors  # shown with the API's problems
    assert np.isnan(running.upper_w(NODE))
    assert np.isfinite(running.upper_w(OTHER))  # the other node's model still forecasts
    errors = running.forecasts.errors_total
    for _ in range(4):
        assert running.tick().decided  # decisions go on
    assert running.forecasts.errors_total > errors


def test_a_slow_registry_does_not_delay_a_tick(store: DuckDBStore, history_file: tuple[Path, float]) -> None:
    s = site()
    twin = Twin(s, seed=0, start_s=history_file[1], record_timeline=False)
    registry = SlowRegistry(store)
    forecasts = NodeForecasts(SiteIndex.from_site(s), registry, store, reload_s=RELOAD_S)
    assembly = assemble(s, [TwinDriver(twin)], store, TwinClock(twin), Mode.OBSERVE, node_forecasts=forecasts)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(assembly.controller.tick())  # warm-up (first decision builds caches)
        forecasts.join(10.0)
        registry.slow = True
        twin.run_for(RELOAD_S, dt_s=5.0)
        t0 = time.perf_counter()
        report = loop.run_until_complete(assembly.controller.tick())
        took_s = time.perf_counter() - t0
        assert report.decided
        assert forecasts.checking  # the 2 s registry read is still under way...
        assert took_s < 1.0  # ...and the tick did not wait for it
    finally:
        forecasts.join(60.0)
        loop.close()


def test_wattwise_train_on_postgres_is_picked_up_by_a_running_controller() -> None:
    """Two writers on the shared store: the controller's connection and the CLI's, as on a real site."""
    with pg_database() as dsn:
        store = PostgresStore(dsn)
        try:
            end_s = fill_from_twin(store, hours=4.0)
            s = site()
            twin = Twin(s, seed=0, start_s=end_s, record_timeline=False)
            forecasts = NodeForecasts(SiteIndex.from_site(s), StoreModelRegistry(store), store, reload_s=RELOAD_S)
            assembly = assemble(s, [TwinDriver(twin)], store, TwinClock(twin), Mode.OBSERVE, node_forecasts=forecasts)
            run = Running(twin, assembly, forecasts, asyncio.new_event_loop())
            try:
                run.settle()
                assert run.status(NODE) == ("baseline", None, "no model registered")
                env = {"WATTWISE_STORE": "postgres", "WATTWISE_POSTGRES_DSN": dsn}
                args = ["train", "--site", str(SITE_FILE), "--model", "holt-winters", "--horizon-s", "900"]
                for version in (1, 2):
                    result = CliRunner().invoke(app, args, env=env)
                    assert result.exit_code == 0, result.output
                    assert f"demand/{NODE} v{version}: held-out MAPE" in result.output
                    run.tick(RELOAD_S)
                    forecasts.join(30.0)
                    run.tick()
                    assert run.status(NODE) == ("model", version, "in use")  # beat persistence on this run
                    assert np.isfinite(run.upper_w(NODE))
            finally:
                forecasts.join(30.0)
                run.loop.close()
        finally:
            store.close()


class DownRegistry(StoreModelRegistry):
    """The store's registry while its server is down."""

    def latest(self, name: str) -> ModelRecord | None:
        raise StoreError("connection refused")


def test_an_unreachable_registry_is_a_problem_and_the_loop_keeps_ticking(
    store: DuckDBStore, history_file: tuple[Path, float]
) -> None:
    s = site()
    twin = Twin(s, seed=0, start_s=history_file[1], record_timeline=False)
    forecasts = NodeForecasts(SiteIndex.from_site(s), DownRegistry(store), store, reload_s=RELOAD_S)
    assembly = assemble(s, [TwinDriver(twin)], store, TwinClock(twin), Mode.OBSERVE, node_forecasts=forecasts)
    run = Running(twin, assembly, forecasts, asyncio.new_event_loop())
    try:
        run.settle()
        assert run.tick().decided
        assert assembly.planner.policy_errors["forecast registry"] == "StoreError: connection refused"
        assert run.status(NODE)[0] == "baseline"
    finally:
        forecasts.join(10.0)
        run.loop.close()


def test_assemble_reads_the_stores_registry_when_asked(store: DuckDBStore) -> None:
    s = site()
    twin = Twin(s, seed=0, record_timeline=False)
    plain = assemble(s, [TwinDriver(twin)], store, TwinClock(twin))
    assert plain.planner.node_forecasts is None
    wired = assemble(s, [TwinDriver(twin)], store, TwinClock(twin), node_forecasts=True, model_reload_s=5.0)
    forecasts = wired.planner.node_forecasts
    assert forecasts is not None and forecasts.reload_s == 5.0
    assert isinstance(forecasts.registry, StoreModelRegistry) and forecasts.registry.store is store
