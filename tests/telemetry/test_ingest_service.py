"""The ingest service as the CLI wires it: NATS, MQTT and DDS into one store, /metrics served."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import nats
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from tests.conftest import free_port

from wattwise.cli.store_cmds import IngestOptions, run_ingest
from wattwise.config import Settings
from wattwise.model.clock import WallClock
from wattwise.model.values import Reading
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.telemetry.codec import encode_readings, mqtt_topic
from wattwise.telemetry.nats_ingest import ensure_stream, publish_readings


async def test_one_service_ingests_all_three_buses(tmp_path: Path, nats_url: str, mqtt_port: int) -> None:
    from wattwise.telemetry.dds_ingest import DdsBus, publish_dds

    store = DuckDBStore(tmp_path / "svc.duckdb")
    settings = Settings(nats_url=nats_url, mqtt_port=mqtt_port, duckdb_path=tmp_path / "unused.duckdb")
    domain = random.randrange(1, 200)
    opts = IngestOptions(("nats", "mqtt", "dds"), f"svc{random.randrange(10**6)}", free_port(), 2.0, domain)
    stop = asyncio.Event()
    service = asyncio.create_task(run_ingest(store, {"ups-a", "pdu-1", "srv-1"}, settings, opts, stop))
    now_s = WallClock().now_s()
    nc = await nats.connect(nats_url)
    await ensure_stream(nc)
    await publish_readings(nc, "dc1", [Reading("ups-a", "power_w", 1830.5, now_s)])
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="svc-pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", mqtt_port)
    pub.loop_start()
    pub.publish(mqtt_topic("dc1", "pdu-1"), encode_readings([Reading("pdu-1", "current_a", 12.0, now_s)]), qos=1)
    bus = DdsBus(domain)
    writer = bus.writer()
    publish_dds(writer, [Reading("srv-1", "cpu_frac", 0.5, now_s)])
    async with asyncio.timeout(30):
        while True:  # polling the store: the service commits in the background
            if store.count() >= 3:
                break
            await asyncio.sleep(0.05)
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{opts.metrics_port}/metrics")).text
    stop.set()
    pipeline = await service
    pub.loop_stop()
    pub.disconnect()
    await nc.close()
    assert {(r.device_id, r.metric, r.value) for r in store.latest()} == {
        ("ups-a", "power_w", 1830.5),
        ("pdu-1", "current_a", 12.0),
        ("srv-1", "cpu_frac", 0.5),
    }
    assert pipeline.validator.stats.accepted_total == 3
    assert 'wattwise_power_watts{device_id="ups-a"} 1830.5' in text
    assert 'wattwise_current_amperes{device_id="pdu-1"} 12.0' in text
    store.close()
