"""DDS ingest and publishing (Eclipse Cyclone DDS 11.0.1), pinned to the loopback interface.

Topic ``wattwise_v1_telemetry`` carries one ``wattwise::ReadingSample`` per reading, with
reliable, transient-local QoS. Cyclone would otherwise discover peers by multicast on the
first non-loopback interface, so every domain is created with ``loopback_config``: ``lo``
only, no multicast, unicast peer 127.0.0.1 (see PEERS.md §8).
"""

# no ``from __future__ import annotations`` here: Cyclone resolves the IdlStruct field types at run time

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from wattwise.model.values import Reading
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.codec import DDS_TOPIC, decode_payload
from wattwise.telemetry.pipeline import IngestPipeline

logger = logging.getLogger(__name__)


@dataclass
class ReadingSample(IdlStruct, typename="wattwise::ReadingSample"):
    """One reading on the DDS bus (tags as a JSON object string)."""

    device_id: str
    metric: str
    value: float
    t_s: float
    quality: str
    tags_json: str


def loopback_config(domain_id: int) -> str:
    """Cyclone XML that keeps a domain on ``lo`` with unicast discovery only."""
    return (
        '<?xml version="1.0" encoding="UTF-8" ?><CycloneDDS xmlns="https://cdds.io/config">'
        f'<Domain id="{domain_id}"><General><Interfaces><NetworkInterface name="lo" multicast="false"/>'
        "</Interfaces><AllowMulticast>false</AllowMulticast></General><Discovery>"
        "<ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>40</MaxAutoParticipantIndex>"
        '<Peers><Peer address="127.0.0.1"/></Peers></Discovery></Domain></CycloneDDS>'
    )


def _qos() -> Qos:
    return Qos(
        Policy.Reliability.Reliable(duration(seconds=1)),
        Policy.Durability.TransientLocal,
        Policy.History.KeepLast(100_000),
    )


# Cyclone allows one explicitly configured Domain per id per process, and it must outlive every
# participant in it; so domains are created once here and kept.
_DOMAINS: dict[int, Domain] = {}


def _domain(domain_id: int) -> Domain:
    if domain_id not in _DOMAINS:
        _DOMAINS[domain_id] = Domain(domain_id, loopback_config(domain_id))
    return _DOMAINS[domain_id]


class DdsBus:
    """A loopback-pinned participant with the telemetry topic (keep it alive while in use)."""

    def __init__(self, domain_id: int) -> None:
        self.domain_id = domain_id
        self._domain = _domain(domain_id)
        self.participant = DomainParticipant(domain_id)
        self.topic = Topic(self.participant, DDS_TOPIC, ReadingSample)

    def writer(self) -> DataWriter[ReadingSample]:
        """A reliable, transient-local writer."""
        return DataWriter(self.participant, self.topic, qos=_qos())

    def reader(self) -> DataReader[ReadingSample]:
        """A reliable, transient-local reader."""
        return DataReader(self.participant, self.topic, qos=_qos())


def publish_dds(writer: DataWriter[ReadingSample], readings: Sequence[Reading]) -> None:
    """Write readings as samples."""
    for r in readings:
        writer.write(ReadingSample(r.device_id, r.metric, r.value, r.t_s, str(r.quality), json.dumps(dict(r.tags))))


class DdsIngest:
    """Takes samples from the telemetry topic into an ``IngestPipeline``.

    Args:
        pipeline: Where readings go.
        bus: The loopback participant and topic.
        take_max: Samples taken per round.
        poll_s: Wait between empty rounds.
    """

    def __init__(self, pipeline: IngestPipeline, bus: DdsBus, take_max: int = 5000, poll_s: float = 0.005) -> None:
        self.pipeline = pipeline
        self.bus = bus
        self.take_max = take_max
        self.poll_s = poll_s
        self.reader = bus.reader()
        self.samples = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Take samples until ``stop`` is set."""
        while not stop.is_set():
            samples = self.reader.take(N=self.take_max)
            if not samples:
                await asyncio.sleep(self.poll_s)
                continue
            self.samples += len(samples)
            await self.pipeline.submit(self._decode(samples))

    def _decode(self, samples: Sequence[ReadingSample]) -> ReadingBatch:
        objs = []
        for s in samples:
            try:
                tags = json.loads(s.tags_json) if s.tags_json else {}
            except ValueError:
                tags = None  # decoded below as malformed, with the device named
            objs.append({"device_id": s.device_id, "metric": s.metric, "value": s.value, "t_s": s.t_s,
                         "quality": s.quality, "tags": tags})  # fmt: skip
        batch, bad = decode_payload(json.dumps(objs).encode())
        for _reason, device in bad:
            self.pipeline.count_malformed(device)
        return batch
