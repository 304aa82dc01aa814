"""Retraining inside the controller's process: the loop keeps deciding while a worker process fits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from control.model_support import fill_from_twin, site
from wattwise.act.base import Mode
from wattwise.control.assemble import assemble
from wattwise.control.model_registry import StoreModelRegistry
from wattwise.control.models import NodeForecasts
from wattwise.control.retrain import StoreRetrainer
from wattwise.control.twin_run import TwinClock
from wattwise.decide.index import SiteIndex
from wattwise.sim.driver import TwinDriver
from wattwise.sim.twin import Twin
from wattwise.store.duckdb_store import DuckDBStore

NODE = "pdu-r00001-a"


def test_retraining_in_process_saves_versions_while_the_loop_ticks(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "store.duckdb")
    s = site()
    index = SiteIndex.from_site(s)
    retrainer = StoreRetrainer(index, store, model="holt-winters")
    loop = asyncio.new_event_loop()
    try:
        end_s = fill_from_twin(store, hours=4.0)
        twin = Twin(s, seed=0, start_s=end_s, record_timeline=False)
        forecasts = NodeForecasts(index, StoreModelRegistry(store), store, reload_s=30.0)
        assembly = assemble(s, [TwinDriver(twin)], store, TwinClock(twin), Mode.OBSERVE, node_forecasts=forecasts)
        controller = assembly.controller

        async def tick() -> float:
            twin.run_for(5.0, dt_s=5.0)
            t0 = time.perf_counter()
            assert (await controller.tick()).decided
            return time.perf_counter() - t0

        async def train_while_ticking() -> tuple[int, float]:
            await tick()  # first decision (caches built) before timing
            task = asyncio.create_task(retrainer.retrain_once())
            ticks, slowest_s = 0, 0.0
            while not task.done():
                slowest_s = max(slowest_s, await tick())
                ticks += 1
                await asyncio.sleep(0.05)
            report = await task
            assert report.saved[f"demand/{NODE}"] == 1
            assert f"demand/{NODE}" in report.saved and "demand/ups-h1-a" in report.saved
            return ticks, slowest_s

        ticks, slowest_s = loop.run_until_complete(train_while_ticking())
        assert ticks >= 1  # decisions went on while the worker fitted
        assert slowest_s < 2.0
        for _ in range(2):  # the next registry check is due, then its result is installed
            twin.run_for(30.0, dt_s=5.0)
            loop.run_until_complete(controller.tick())
            forecasts.join(10.0)
        loop.run_until_complete(controller.tick())
        status = next(x for x in forecasts.status() if x.node_id == NODE)
        assert (status.source, status.version) == ("model", 1)
        rec = StoreModelRegistry(store).latest(f"demand/{NODE}")
        assert rec is not None and dict(rec.meta)["model"] == "holt-winters"
        forecasts.join(10.0)
    finally:
        retrainer.close()
        loop.close()
        store.close()


def test_a_node_without_history_is_skipped_by_name(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    store = DuckDBStore(path)
    retrainer = StoreRetrainer(SiteIndex.from_site(site()), store)
    try:
        report = asyncio.run(retrainer.retrain_once())
    finally:
        retrainer.close()
        store.close()
    assert report.saved == {}
    assert report.skipped["ups-h1-a"] == "no output_power_w readings in the store"
