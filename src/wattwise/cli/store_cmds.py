"""Telemetry and store commands: ``ingest`` (bus → validated store) and ``store-retention``."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from prometheus_client import start_http_server

from wattwise.config import Settings
from wattwise.model.clock import WallClock
from wattwise.model.loader import load_site
from wattwise.store.base import TimeSeriesStore
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.store.postgres_store import PostgresStore
from wattwise.telemetry.exporter import build_registry
from wattwise.telemetry.mqtt_ingest import MqttIngest
from wattwise.telemetry.nats_ingest import NatsIngest
from wattwise.telemetry.pipeline import IngestPipeline
from wattwise.telemetry.validate import ReadingValidator, site_device_ids

logger = logging.getLogger(__name__)


def open_store(settings: Settings) -> TimeSeriesStore:
    """The store the settings name (DuckDB file by default)."""
    if settings.store == "postgres":
        return PostgresStore(settings.postgres_dsn.get_secret_value())
    return DuckDBStore(settings.duckdb_path)


def _known_devices(site: Path | None, devices_file: Path | None) -> set[str]:
    known: set[str] = set()
    if site is not None:
        known |= site_device_ids(load_site(site))
    if devices_file is not None:
        known |= {line.strip() for line in devices_file.read_text().splitlines() if line.strip()}
    if not known:
        raise typer.BadParameter("give --site or --devices-file: readings of unknown devices are rejected")
    return known


async def run_ingest(
    store: TimeSeriesStore, known: set[str], settings: Settings, opts: IngestOptions, stop: asyncio.Event | None = None
) -> IngestPipeline:
    """Run the ingest service until ``stop`` is set (or SIGTERM/SIGINT when no event is given)."""
    pipeline = IngestPipeline(store, ReadingValidator(known), WallClock())
    server = None
    if opts.metrics_port:
        server, _ = start_http_server(opts.metrics_port, addr="127.0.0.1", registry=build_registry(pipeline))
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(pipeline.run(stop))]
    mqtt_source: MqttIngest | None = None
    if "nats" in opts.sources:
        nats_source = NatsIngest(pipeline, settings.nats_url, durable=opts.durable, ack_wait_s=opts.ack_wait_s)
        tasks.append(asyncio.create_task(nats_source.run(stop)))
    if "mqtt" in opts.sources:
        mqtt_source = MqttIngest(pipeline, settings.mqtt_host, settings.mqtt_port, client_id=opts.durable)
        mqtt_source.start()
        tasks.append(asyncio.create_task(mqtt_source.run(stop)))
    if "dds" in opts.sources:
        from wattwise.telemetry.dds_ingest import DdsBus, DdsIngest  # Cyclone loads only when asked for

        tasks.append(asyncio.create_task(DdsIngest(pipeline, DdsBus(opts.dds_domain)).run(stop)))
    await stop.wait()
    await asyncio.gather(*tasks)  # the pipeline drains its queue and runs the ack callbacks first
    if mqtt_source is not None:
        mqtt_source.stop()
    if server is not None:
        server.shutdown()
        server.server_close()
    return pipeline


@dataclass(frozen=True)
class IngestOptions:
    """How the ingest service runs.

    Attributes:
        sources: Any of ``nats``, ``mqtt``, ``dds``.
        durable: JetStream durable consumer name, also the MQTT client id.
        metrics_port: Port of the Prometheus endpoint on 127.0.0.1 (0: none).
        ack_wait_s: JetStream redelivery delay for unacknowledged messages.
        dds_domain: DDS domain id.
    """

    sources: tuple[str, ...] = ("nats",)
    durable: str = "wattwise-ingest"
    metrics_port: int = 0
    ack_wait_s: float = 10.0
    dds_domain: int = 0


def ingest(
    site: Annotated[Path | None, typer.Option(help="Site file: its ids are the known devices")] = None,
    devices_file: Annotated[Path | None, typer.Option(help="Extra known device ids, one per line")] = None,
    store: Annotated[str | None, typer.Option(help="duckdb or postgres (default: settings)")] = None,
    duckdb_path: Annotated[Path | None, typer.Option(help="DuckDB file (default: settings)")] = None,
    dsn: Annotated[str | None, typer.Option(help="PostgreSQL DSN (default: settings)")] = None,
    nats_url: Annotated[str | None, typer.Option(help="NATS server (default: settings)")] = None,
    durable: Annotated[str, typer.Option(help="JetStream durable consumer name")] = "wattwise-ingest",
    metrics_port: Annotated[int, typer.Option(help="Serve Prometheus /metrics on 127.0.0.1:PORT (0: off)")] = 0,
    ack_wait_s: Annotated[float, typer.Option(help="JetStream redelivers unacknowledged messages after this")] = 10.0,
    source: Annotated[list[str] | None, typer.Option(help="nats, mqtt and/or dds (repeatable)")] = None,
    dds_domain: Annotated[int, typer.Option(help="DDS domain id (loopback only)")] = 0,
) -> None:
    """Consume telemetry from NATS JetStream (and MQTT, DDS), validate it and store it (until SIGTERM)."""
    sources = tuple(source or ["nats"])
    unknown = set(sources) - {"nats", "mqtt", "dds"}
    if unknown:
        raise typer.BadParameter(f"unknown source(s): {', '.join(sorted(unknown))}")
    overrides: dict[str, object] = {
        k: v for k, v in {"store": store, "duckdb_path": duckdb_path, "postgres_dsn": dsn, "nats_url": nats_url}.items()
        if v is not None
    }  # fmt: skip
    settings = Settings(**overrides)  # type: ignore[arg-type]
    known = _known_devices(site, devices_file)
    target = open_store(settings)
    try:
        opts = IngestOptions(sources, durable, metrics_port, ack_wait_s, dds_domain)
        pipeline = asyncio.run(run_ingest(target, known, settings, opts))
        stats = pipeline.validator.stats
        print(f"stored {stats.accepted_total}, rejected {stats.rejected_total} {stats.by_reason()}", flush=True)
    finally:
        target.close()


def store_retention(
    raw_keep_s: Annotated[float, typer.Option(help="Keep raw readings this long, s")] = 7 * 86400.0,
    rollup_step_s: Annotated[float, typer.Option(help="Roll-up bucket, s")] = 300.0,
    rollup_keep_s: Annotated[float, typer.Option(help="Keep roll-ups this long, s")] = 400 * 86400.0,
) -> None:
    """Roll old raw readings into buckets and drop expired roll-ups."""
    settings = Settings()
    target = open_store(settings)
    try:
        res = target.apply_retention(WallClock().now_s(), raw_keep_s, rollup_step_s, rollup_keep_s)
    finally:
        target.close()
    print(f"rolled {res.deleted_raw} readings into {res.rolled_up_buckets} buckets; dropped {res.deleted_rollups}")


def register(app: typer.Typer) -> None:
    """Add the telemetry/store commands."""
    app.command("ingest")(ingest)
    app.command("store-retention")(store_retention)
