"""MQTT ingest (paho-mqtt 2.x): QoS 1, persistent session, acknowledged after the commit.

paho's network thread puts each message into a bounded inbox and waits while it is full, so a
slow store slows the broker down (back-pressure) instead of losing messages. ``run`` drains
the inbox in chunks (one decode and one hand-over per chunk, not per message). With
``manual_ack`` the PUBACK goes out only once the batch is committed, and with a persistent
session (``clean_start=False``) the broker keeps QoS 1 messages while the ingest is down.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.codec import decode_payload, mqtt_wildcard
from wattwise.telemetry.pipeline import IngestPipeline

logger = logging.getLogger(__name__)


class MqttIngest:
    """Subscribes to the telemetry topics and feeds an ``IngestPipeline``.

    Args:
        pipeline: Where decoded readings go.
        host: Broker host.
        port: Broker port.
        client_id: Stable id, so the broker keeps this session across restarts.
        topic: Subscription filter.
        session_expiry_s: How long the broker keeps the session while disconnected.
        inbox_messages: Messages held between paho's thread and the pipeline.
        chunk_messages: Most messages decoded and handed over at once.
    """

    def __init__(
        self,
        pipeline: IngestPipeline,
        host: str = "127.0.0.1",
        port: int = 1883,
        client_id: str = "wattwise-ingest",
        topic: str = mqtt_wildcard(),
        session_expiry_s: int = 3600,
        inbox_messages: int = 10_000,
        chunk_messages: int = 1000,
    ) -> None:
        self.pipeline = pipeline
        self.chunk_messages = chunk_messages
        self._inbox: queue.Queue[tuple[bytes, int, int]] = queue.Queue(maxsize=inbox_messages)
        self.host = host
        self.port = port
        self.client_id = client_id
        self.topic = topic
        self.session_expiry_s = session_expiry_s
        self.subscribed = threading.Event()
        self.messages = 0
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def start(self) -> None:
        """Connect and start paho's network thread."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry_s
        self._client.connect(self.host, self.port, clean_start=False, properties=props)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        logger.info("MQTT ingest connected to %s:%d (%s)", self.host, self.port, reason)
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: object, _rc: object, _p: object) -> None:
        self.subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        # blocks paho's thread while the inbox is full: back-pressure, not loss
        self._inbox.put((bytes(msg.payload), msg.mid, msg.qos))

    async def run(self, stop: asyncio.Event) -> None:
        """Hand inbox chunks to the pipeline until ``stop`` is set; acks follow each commit."""
        while not stop.is_set():
            try:
                first = await asyncio.to_thread(self._inbox.get, True, 0.05)
            except queue.Empty:
                continue
            items = [first]
            while len(items) < self.chunk_messages:
                try:
                    items.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            await self._hand_over(items)

    async def _hand_over(self, items: list[tuple[bytes, int, int]]) -> None:
        batches = []
        for payload, _mid, _qos in items:
            batch, bad = decode_payload(payload)
            batches.append(batch)
            for _reason, device in bad:
                self.pipeline.count_malformed(device)
        acks = [(mid, qos) for _, mid, qos in items]

        def acknowledge() -> None:
            for mid, qos in acks:
                self._client.ack(mid, qos)

        await self.pipeline.submit(ReadingBatch.concat(batches), on_commit=acknowledge)
        self.messages += len(items)
