"""MQTT ingest (paho-mqtt 2.x): QoS 1, persistent session, acknowledged after the commit.

paho's network thread hands each message to the pipeline and waits while the pipeline's
queue is full, so a slow store slows the broker down (back-pressure) instead of losing
messages. With ``manual_ack`` the PUBACK goes out only once the batch is committed, and with
a persistent session (``clean_start=False``) the broker keeps QoS 1 messages while the
ingest is down.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from wattwise.telemetry.codec import decode_payload, mqtt_wildcard
from wattwise.telemetry.pipeline import IngestPipeline

logger = logging.getLogger(__name__)


class MqttIngest:
    """Subscribes to the telemetry topics and feeds an ``IngestPipeline``.

    Args:
        pipeline: Where decoded readings go.
        loop: The event loop the pipeline runs on.
        host: Broker host.
        port: Broker port.
        client_id: Stable id, so the broker keeps this session across restarts.
        topic: Subscription filter.
        session_expiry_s: How long the broker keeps the session while disconnected.
    """

    def __init__(
        self,
        pipeline: IngestPipeline,
        loop: asyncio.AbstractEventLoop,
        host: str = "127.0.0.1",
        port: int = 1883,
        client_id: str = "wattwise-ingest",
        topic: str = mqtt_wildcard(),
        session_expiry_s: int = 3600,
    ) -> None:
        self.pipeline = pipeline
        self.loop = loop
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

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        batch, bad = decode_payload(bytes(msg.payload))
        mid, qos = msg.mid, msg.qos

        def acknowledge() -> None:
            client.ack(mid, qos)

        async def hand_over() -> None:
            for _reason, device in bad:
                self.pipeline.count_malformed(device)
            await self.pipeline.submit(batch, on_commit=acknowledge)

        # blocks paho's thread while the pipeline's queue is full: back-pressure, not loss
        asyncio.run_coroutine_threadsafe(hand_over(), self.loop).result()
        self.messages += 1
