"""Heartbeats from event processors and servers, over HTTP or NATS, turned into readings.

A heartbeat is one JSON object (version 1)::

    {"v": 1, "id": "ep-7", "seq": 42, "t_s": 1764000000.5,
     "cpu_frac": 0.41, "memory_frac": 0.63, "network_bps": 1.2e6, "lag_s": 0.05}

``id``, ``seq`` and ``t_s`` are required; the utilisation fields are optional. Senders POST
it to ``http://<collector>/v1/heartbeat`` or publish it on NATS subject
``wattwise.v1.<site>.heartbeat.<id>``. :class:`HeartbeatDriver` keeps the latest heartbeat per
source; ``read()`` reports its utilisation plus ``heartbeat_gap_s`` (time since the last
heartbeat, rising while a source is silent) and ``available`` (0 once the gap exceeds
``timeout_s``), for every expected source, heard or not. Malformed heartbeats are counted in
``rejected`` and never raise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wattwise.errors import DeviceUnavailable
from wattwise.model.values import Action, ActionKind, ActionResult, Reading

logger = logging.getLogger(__name__)

HTTP_PATH = "/v1/heartbeat"
_FIELDS = {"cpu_frac": (0.0, 1.0), "memory_frac": (0.0, 1.0), "network_bps": (0.0, 1e12), "lag_s": (0.0, 1e6)}


def nats_subject(site_id: str, source_id: str = "*") -> str:
    """NATS subject of one source's heartbeats (``*`` for all sources of a site)."""
    return f"wattwise.v1.{site_id}.heartbeat.{source_id.replace('.', '_')}"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One validated heartbeat.

    Attributes:
        source_id: Site id of the event processor or server.
        seq: Sender's sequence number (gaps reveal lost heartbeats).
        t_s: Sender's timestamp, s.
        values: Utilisation metrics present in it (canonical names).
        received_s: Receiver's time of arrival, s.
    """

    source_id: str
    seq: int
    t_s: float
    values: tuple[tuple[str, float], ...]
    received_s: float


def parse_heartbeat(payload: bytes, received_s: float) -> Heartbeat:
    """Validate one heartbeat payload.

    Raises:
        ValueError: Not a version-1 heartbeat, or a field out of range.
    """
    data: Any = json.loads(payload)
    if not isinstance(data, dict) or data.get("v", 1) != 1:
        raise ValueError("not a version-1 heartbeat object")
    source, seq, t_s = data.get("id"), data.get("seq"), data.get("t_s")
    if not isinstance(source, str) or not source or not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError("id (string) and seq (integer) are required")
    if not isinstance(t_s, int | float) or not math.isfinite(t_s):
        raise ValueError("t_s must be a finite number")
    values = []
    for name, (lo, hi) in _FIELDS.items():
        if name in data:
            v = data[name]
            if not isinstance(v, int | float) or isinstance(v, bool) or not lo <= v <= hi:
                raise ValueError(f"{name}={v!r} outside [{lo}, {hi}]")
            values.append((name, float(v)))
    return Heartbeat(source, seq, float(t_s), tuple(values), received_s)


class HeartbeatDriver:
    """Latest heartbeat per source as readings; listens on HTTP and/or NATS.

    Args:
        site_id: Site (for the NATS subject).
        expected: Source ids that should send heartbeats (silent ones are reported too).
        timeout_s: Gap after which a source is reported unavailable.
        now_s: Receiver clock.
    """

    def __init__(
        self, site_id: str, expected: Sequence[str] = (), timeout_s: float = 5.0, now_s: Callable[[], float] = time.time
    ) -> None:
        self.name = f"heartbeat:{site_id}"
        self.site_id = site_id
        self.expected = tuple(expected)
        self.timeout_s = timeout_s
        self.now_s = now_s
        self.latest: dict[str, Heartbeat] = {}
        self.accepted = 0
        self.rejected = 0
        self.lost = 0
        self._started_s = now_s()
        self._server: asyncio.Server | None = None
        self._nats: Any = None

    def supports(self, kind: ActionKind) -> bool:
        """Heartbeats are read-only."""
        return False

    def receive(self, payload: bytes) -> bool:
        """Accept one heartbeat payload (from any transport); returns whether it was valid."""
        try:
            hb = parse_heartbeat(payload, self.now_s())
        except (ValueError, UnicodeDecodeError) as err:
            self.rejected += 1
            logger.debug("heartbeat rejected: %s", err)
            return False
        previous = self.latest.get(hb.source_id)
        if previous is not None:
            if hb.seq <= previous.seq:
                return True  # duplicate or reordered: keep the newest
            self.lost += hb.seq - previous.seq - 1
        self.latest[hb.source_id] = hb
        self.accepted += 1
        return True

    async def read(self) -> list[Reading]:
        """Utilisation, gap and availability of every known or expected source."""
        now = self.now_s()
        out: list[Reading] = []
        for source in dict.fromkeys((*self.expected, *self.latest)):
            hb = self.latest.get(source)
            gap = now - (hb.received_s if hb else self._started_s)
            out.append(Reading(source, "heartbeat_gap_s", max(0.0, gap), now))
            out.append(Reading(source, "available", 1.0 if hb is not None and gap <= self.timeout_s else 0.0, now))
            if hb is not None:
                out += [Reading(source, m, v, hb.t_s) for m, v in hb.values]
        return out

    async def apply(self, action: Action) -> ActionResult:
        """Heartbeats take no actions."""
        return ActionResult(command_id=action.command_id, ok=False, message="heartbeats are read-only")

    async def listen_http(self, port: int = 0) -> int:
        """Accept ``POST /v1/heartbeat`` on 127.0.0.1; returns the port."""
        self._server = await asyncio.start_server(self._http, "127.0.0.1", port)
        return int(self._server.sockets[0].getsockname()[1])

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                method, path = (lines[0].split(" ") + ["", ""])[:2]
                length = next((int(h.split(":", 1)[1]) for h in lines if h.lower().startswith("content-length:")), 0)
                body = await reader.readexactly(length) if length else b""
                ok = method == "POST" and path == HTTP_PATH and self.receive(body)
                status = "204 No Content" if ok else "400 Bad Request" if path == HTTP_PATH else "404 Not Found"
                writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def listen_nats(self, url: str = "nats://127.0.0.1:4222") -> None:
        """Subscribe to this site's heartbeat subjects on NATS.

        Raises:
            DeviceUnavailable: NATS cannot be reached.
        """
        import nats  # only needed by deployments that use NATS
        from nats.errors import Error as NatsError

        async def on_message(msg: Any) -> None:
            self.receive(msg.data)

        try:
            # nats-py can keep retrying a refused server; the deadline keeps this call bounded.
            self._nats = await asyncio.wait_for(
                nats.connect(url, connect_timeout=2, max_reconnect_attempts=1, allow_reconnect=False), timeout=3.0
            )
            await self._nats.subscribe(nats_subject(self.site_id, "*"), cb=on_message)
            await self._nats.flush()
        except (OSError, TimeoutError, NatsError) as err:
            raise DeviceUnavailable(f"NATS: {err!r}", url=url) from err

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._nats is not None:
            await self._nats.close()
