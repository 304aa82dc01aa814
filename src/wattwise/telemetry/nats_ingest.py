"""NATS JetStream ingest: a durable pull consumer that acknowledges only after the commit.

If the ingest process dies (even SIGKILL) before a batch is committed, JetStream redelivers
its messages to the same durable consumer after restart; rows that were committed but not yet
acknowledged come back too and are skipped as duplicates by the store's key. So every valid
reading is stored exactly once. Publishers should set ``Nats-Msg-Id`` (``publish_readings``
does) so that JetStream also removes duplicate publications.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from wattwise.model.values import Reading
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.codec import NATS_STREAM, decode_payload, encode_readings, nats_subject, nats_wildcard
from wattwise.telemetry.pipeline import IngestPipeline

logger = logging.getLogger(__name__)


async def ensure_stream(nc: Client, stream: str = NATS_STREAM, subjects: Sequence[str] = (nats_wildcard(),)) -> None:
    """Create the telemetry stream if it does not exist (file storage, 2 min duplicate window)."""
    js = nc.jetstream()
    try:
        await js.stream_info(stream)
    except NotFoundError:
        try:
            await js.add_stream(StreamConfig(name=stream, subjects=list(subjects), duplicate_window=120.0))
        except BadRequestError as err:
            # Another client (an ingest service and a publisher starting together) created it
            # between the two calls; if it still is not there the overlap is real: raise.
            try:
                await js.stream_info(stream)
            except NotFoundError:
                raise err from None


async def publish_readings(nc: Client, site_id: str, readings: Sequence[Reading]) -> None:
    """Publish each device's readings as one JSON message on its subject (with a dedup id)."""
    js = nc.jetstream()
    by_device: dict[str, list[Reading]] = {}
    for r in readings:
        by_device.setdefault(r.device_id, []).append(r)
    for device, rows in by_device.items():
        msg_id = f"{device}|{rows[0].metric}|{rows[0].t_s!r}|{len(rows)}"
        await js.publish(nats_subject(site_id, device), encode_readings(rows), headers={"Nats-Msg-Id": msg_id})


class NatsIngest:
    """Pulls telemetry from a durable JetStream consumer into an ``IngestPipeline``.

    Args:
        pipeline: Where decoded readings go.
        url: NATS server.
        stream: JetStream stream holding the telemetry subjects.
        durable: Durable consumer name (shared by restarts of the same ingest service).
        fetch_size: Messages pulled per round.
        fetch_timeout_s: How long one pull waits for messages.
        ack_wait_s: After this long without an ack, JetStream redelivers (e.g. after a crash).
    """

    def __init__(
        self,
        pipeline: IngestPipeline,
        url: str = "nats://127.0.0.1:4222",
        stream: str = NATS_STREAM,
        durable: str = "wattwise-ingest",
        fetch_size: int = 2000,
        fetch_timeout_s: float = 0.2,
        ack_wait_s: float = 10.0,
    ) -> None:
        self.pipeline = pipeline
        self.url = url
        self.stream = stream
        self.durable = durable
        self.fetch_size = fetch_size
        self.fetch_timeout_s = fetch_timeout_s
        self.ack_wait_s = ack_wait_s
        self.messages_committed = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; each pulled round is committed, then acknowledged."""
        nc = await nats.connect(self.url, connect_timeout=2, max_reconnect_attempts=-1)
        try:
            await ensure_stream(nc, self.stream)
            # Explicit acks, never AckPolicy.ALL: after a crash, acking a newer message must not
            # also acknowledge older ones the dead process had fetched but not committed.
            config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=100_000, ack_wait=self.ack_wait_s)
            sub = await nc.jetstream().pull_subscribe(nats_wildcard(), durable=self.durable, config=config)
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(self.fetch_size, timeout=self.fetch_timeout_s)
                except TimeoutError:
                    continue
                await self._commit(msgs)
        finally:
            await nc.close()

    async def _commit(self, msgs: list[Msg]) -> None:
        batches: list[ReadingBatch] = []
        for m in msgs:
            batch, bad = decode_payload(m.data)
            batches.append(batch)
            for _reason, device in bad:
                self.pipeline.count_malformed(device)
        await self.pipeline.commit(ReadingBatch.concat(batches))
        for m in msgs:
            await m.ack()
        self.messages_committed += len(msgs)
