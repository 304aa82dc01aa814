"""Bus payloads and names: the one JSON reading format and the topic/subject scheme (docs/bus.md).

A payload is UTF-8 JSON: one reading object or a list of them::

    {"device_id": "ups-a", "metric": "power_w", "value": 1830.5, "t_s": 1700000000.25,
     "quality": "good", "tags": {"application": "web", "rack": "r12"}}

``decode_payload`` never raises: whatever cannot become a reading is returned as a
``(reason, device_id)`` rejection so that it is counted, never silently dropped.

>>> batch, bad = decode_payload(b'[{"device_id": "a", "metric": "power_w", "value": 1, "t_s": 2}, 7]')
>>> len(batch), [(str(r), d) for r, d in bad]
(1, [('malformed', '')])
>>> nats_subject("dc1", "pdu-1.o3")
'wattwise.v1.dc1.telemetry.pdu-1_o3'
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable

from wattwise.model.values import Quality, Reading
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.validate import RejectReason

Rejection = tuple[RejectReason, str]

BUS_VERSION = "v1"
NATS_STREAM = "WATTWISE_TELEMETRY"
DDS_TOPIC = "wattwise_v1_telemetry"
_QUALITIES = frozenset(q.value for q in Quality)
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def _token(name: str) -> str:
    """A name made safe as one NATS token / MQTT level (dots, wildcards, spaces become ``_``)."""
    return _UNSAFE.sub("_", name) or "_"


def nats_subject(site_id: str, device_id: str) -> str:
    """NATS subject of one device's telemetry: ``wattwise.v1.<site>.telemetry.<device>``."""
    return f"wattwise.{BUS_VERSION}.{_token(site_id)}.telemetry.{_token(device_id)}"


def nats_wildcard(site_id: str = "*") -> str:
    """Subject filter for the telemetry of one site (or every site)."""
    return f"wattwise.{BUS_VERSION}.{site_id if site_id == '*' else _token(site_id)}.telemetry.>"


def mqtt_topic(site_id: str, device_id: str) -> str:
    """MQTT topic of one device's telemetry: ``wattwise/v1/<site>/telemetry/<device>``."""
    return f"wattwise/{BUS_VERSION}/{_token(site_id)}/telemetry/{_token(device_id)}"


def mqtt_wildcard(site_id: str = "+") -> str:
    """Topic filter for the telemetry of one site (or every site)."""
    return f"wattwise/{BUS_VERSION}/{site_id if site_id == '+' else _token(site_id)}/telemetry/#"


def reading_to_obj(r: Reading) -> dict[str, object]:
    """A reading as the JSON object of the bus format."""
    return {"device_id": r.device_id, "metric": r.metric, "value": r.value, "t_s": r.t_s,
            "quality": str(r.quality), "tags": dict(r.tags)}  # fmt: skip


def encode_readings(readings: Iterable[Reading]) -> bytes:
    """Readings as one JSON payload (a list)."""
    return json.dumps([reading_to_obj(r) for r in readings], allow_nan=True).encode()


def _number(x: object) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None  # "12.5" or true is a wrong type, not a number
    try:
        return float(x)
    except OverflowError:
        return math.inf  # an integer too big for a float: let validation call it out of range


def _one(obj: object) -> Reading | Rejection:
    if not isinstance(obj, dict):
        return (RejectReason.MALFORMED, "")
    device = obj.get("device_id")
    if not isinstance(device, str) or not device:
        return (RejectReason.MALFORMED, "")
    metric, quality, tags = obj.get("metric"), obj.get("quality", "good"), obj.get("tags", {})
    value, t_s = _number(obj.get("value")), _number(obj.get("t_s"))
    if (
        not isinstance(metric, str)
        or value is None
        or t_s is None
        or not isinstance(quality, str)
        or quality not in _QUALITIES
        or not isinstance(tags, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    ):
        return (RejectReason.MALFORMED, device)
    return Reading(device, metric, value, t_s, Quality(quality), tuple(sorted(tags.items())))


def decode_payload(payload: bytes) -> tuple[ReadingBatch, list[Rejection]]:
    """Readings from one bus payload, and a rejection for everything that is not one."""
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, absurd nesting
        return ReadingBatch.empty(), [(RejectReason.MALFORMED, "")]
    readings: list[Reading] = []
    bad: list[Rejection] = []
    for item in doc if isinstance(doc, list) else [doc]:
        out = _one(item)
        if isinstance(out, Reading):
            readings.append(out)
        else:
            bad.append(out)
    return ReadingBatch.from_readings(readings), bad
