"""MQTT (real mosquitto) and DDS (real Cyclone DDS on loopback) into a real store."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from wattwise.model.clock import WallClock
from wattwise.model.values import Reading
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.telemetry.codec import encode_readings, mqtt_topic
from wattwise.telemetry.pipeline import IngestPipeline
from wattwise.telemetry.validate import ReadingValidator

DEVICES = [f"pdu-{i}" for i in range(10)]


def _readings(n: int, t0_s: float) -> list[Reading]:
    return [
        Reading(DEVICES[i % 10], "current_a", 1.0 + i % 7, t0_s + i * 1e-3, tags=(("feed", "A"),)) for i in range(n)
    ]


async def _drain(pipeline: IngestPipeline, store: DuckDBStore, expect: int, timeout_s: float = 20.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    async with asyncio.timeout(timeout_s):
        while True:  # polling the store: there is no event to wait on
            if store.count() >= expect:
                break
            await asyncio.sleep(0.02)
    stop.set()
    await task


async def test_mqtt_qos1_readings_are_stored(tmp_path: Path, mqtt_port: int) -> None:
    from wattwise.telemetry.mqtt_ingest import MqttIngest

    store = DuckDBStore(tmp_path / "m.duckdb")
    pipeline = IngestPipeline(store, ReadingValidator(DEVICES), WallClock(), max_queued_batches=4)
    ingest = MqttIngest(pipeline, port=mqtt_port, client_id=f"t{random.random()}", inbox_messages=50)
    ingest.start()
    source_stop = asyncio.Event()
    source = asyncio.create_task(ingest.run(source_stop))
    await asyncio.to_thread(ingest.subscribed.wait, 5)
    readings = _readings(3000, WallClock().now_s() - 10)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub", protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", mqtt_port)
    pub.loop_start()
    done = threading.Event()

    def publish_all() -> None:
        for i in range(0, len(readings), 10):
            chunk = readings[i : i + 10]
            pub.publish(mqtt_topic("dc1", chunk[0].device_id), encode_readings(chunk), qos=1).wait_for_publish(5)
        pub.publish(mqtt_topic("dc1", "pdu-0"), b"{broken", qos=1).wait_for_publish(5)
        done.set()

    threading.Thread(target=publish_all, daemon=True).start()
    await _drain(pipeline, store, len(readings))
    await asyncio.to_thread(done.wait, 5)
    pub.disconnect()
    pub.loop_stop()
    await asyncio.sleep(0.2)
    source_stop.set()
    await source
    ingest.stop()
    assert store.count() == len(readings)
    assert {a.tag_value: a.count for a in store.aggregate_by_tag("current_a", "feed", 0, 1e12)} == {"A": 3000}
    assert pipeline.validator.stats.by_reason().get("malformed", 0) in (0, 1)  # the last one may still be queued
    store.close()


async def test_dds_samples_are_stored(tmp_path: Path) -> None:
    from wattwise.telemetry.dds_ingest import DdsBus, DdsIngest, publish_dds

    domain_id = random.randrange(1, 200)  # isolates parallel runs
    bus = DdsBus(domain_id)
    store = DuckDBStore(tmp_path / "d.duckdb")
    pipeline = IngestPipeline(store, ReadingValidator(DEVICES), WallClock())
    ingest = DdsIngest(pipeline, bus)
    stop = asyncio.Event()
    source = asyncio.create_task(ingest.run(stop))
    writer = bus.writer()
    readings = _readings(500, WallClock().now_s() - 10)
    bad = Reading("ghost", "current_a", 1.0, readings[0].t_s)
    publish_dds(writer, [*readings, bad])
    await _drain(pipeline, store, len(readings))
    stop.set()
    await source
    assert store.count() == 500
    assert pipeline.validator.stats.by_reason() == {"unknown_device": 1}
    assert json.loads(json.dumps(store.latest(device_ids=["pdu-3"])[0].value)) > 0
    store.close()
