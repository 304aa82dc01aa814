"""Prometheus exposition: names in base units, health metrics, and a real Prometheus scrape."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client import generate_latest, start_http_server
from tests.telemetry.conftest import Prometheus

from wattwise.model.clock import SimClock, WallClock
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.exporter import build_registry, metrics_app
from wattwise.telemetry.pipeline import IngestPipeline
from wattwise.telemetry.validate import ReadingValidator


async def _pipeline(tmp_path: Path, now_s: float, clock: SimClock | WallClock) -> tuple[IngestPipeline, DuckDBStore]:
    store = DuckDBStore(tmp_path / "e.duckdb")
    pipeline = IngestPipeline(store, ReadingValidator({"ups-a", "pdu-1"}), clock)
    batch = ReadingBatch.from_columns(
        ["ups-a", "ups-a", "pdu-1", "pdu-1", "ups-a", "ghost"],
        ["power_w", "power_w", "energy_j", "temperature_c", "power_w", "power_w"],
        [1000.0, 1830.5, 5.0e6, 31.5, -3.0, 1.0],
        [now_s - 2, now_s - 1, now_s - 1, now_s - 1, now_s, now_s],
    )
    await pipeline.commit(batch)
    return pipeline, store


async def test_exposition_uses_base_units_and_reports_health(tmp_path: Path) -> None:
    now_s = 1_700_000_000.0
    pipeline, store = await _pipeline(tmp_path, now_s, SimClock(now_s))
    text = generate_latest(build_registry(pipeline)).decode()
    assert 'wattwise_power_watts{device_id="ups-a"} 1830.5' in text
    assert 'wattwise_energy_joules_total{device_id="pdu-1"} 5e+06' in text
    assert 'wattwise_temperature_celsius{device_id="pdu-1"} 31.5' in text
    assert 'wattwise_readings_rejected_total{device_id="ups-a",reason="out_of_range"} 1.0' in text
    assert 'wattwise_readings_rejected_total{device_id="ghost",reason="unknown_device"} 1.0' in text
    assert "wattwise_readings_accepted_total 4.0" in text
    assert 'wattwise_device_staleness_seconds{device_id="ups-a"} 1.0' in text
    assert "wattwise_store_write_seconds_count 1.0" in text
    assert 'wattwise_build_info{version="0.1.0"} 1.0' in text
    transport = httpx.ASGITransport(app=metrics_app(build_registry(pipeline)))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://wattwise") as client:
        r = await client.get("/metrics")
    assert r.status_code == 200
    assert 'wattwise_power_watts{device_id="ups-a"} 1830.5' in r.text
    store.close()


async def test_phases_are_one_series_name_with_a_phase_label(tmp_path: Path) -> None:
    now_s = 1_700_000_000.0
    store = DuckDBStore(tmp_path / "p.duckdb")
    pipeline = IngestPipeline(store, ReadingValidator({"pdu-1"}), SimClock(now_s))
    metrics = ["current_l1_a", "current_l2_a", "current_l3_a", "current_a", "breaker_l2_tripped", "power_l3_w"]
    batch = ReadingBatch.from_columns(["pdu-1"] * 6, metrics, [3.0, 4.5, 2.5, 10.0, 1.0, 575.0], [now_s] * 6)
    await pipeline.commit(batch)
    text = generate_latest(build_registry(pipeline)).decode()
    store.close()
    for phase, amps in (("L1", "3.0"), ("L2", "4.5"), ("L3", "2.5")):
        assert f'wattwise_phase_current_amperes{{device_id="pdu-1",phase="{phase}"}} {amps}' in text
    assert 'wattwise_phase_breaker_tripped{device_id="pdu-1",phase="L2"} 1.0' in text
    assert 'wattwise_phase_power_watts{device_id="pdu-1",phase="L3"} 575.0' in text
    assert 'wattwise_current_amperes{device_id="pdu-1"} 10.0' in text  # the total keeps its own name
    assert "# TYPE wattwise_phase_current_amperes gauge" in text
    assert text.count("# HELP wattwise_phase_current_amperes ") == 1
    assert "_l1_" not in text and "_l2_" not in text


async def test_real_prometheus_scrapes_the_exporter(tmp_path: Path, prometheus: Prometheus) -> None:
    clock = WallClock()
    pipeline, store = await _pipeline(tmp_path, clock.now_s(), clock)
    server, thread = start_http_server(prometheus.scrape_port, addr="127.0.0.1", registry=build_registry(pipeline))
    try:
        result: list[dict[str, object]] = []
        async with asyncio.timeout(20):  # Prometheus applies new targets on a 5 s tick
            while not result:
                await asyncio.sleep(0.25)
                result = await asyncio.to_thread(prometheus.query, 'wattwise_power_watts{device_id="ups-a"}')
        value = result[0]["value"]
        assert isinstance(value, list)
        assert float(value[1]) == 1830.5
        total = await asyncio.to_thread(prometheus.query, "sum(wattwise_readings_rejected_total)")
        assert float(total[0]["value"][1]) == 2.0  # type: ignore[index]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        store.close()
