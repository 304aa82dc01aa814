"""HeartbeatEmitter: event processors and servers of a backing Driver send heartbeats over the wire.

Each period it reads the driver and, for every source that is ``available``, sends one
version-1 heartbeat (see :mod:`wattwise.drivers.heartbeat`) by HTTP POST or NATS publish. A
source the twin reports down sends nothing, so the collector's gap rises as it would in the field.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import httpx

from wattwise.drivers.base import Driver
from wattwise.drivers.heartbeat import HTTP_PATH, nats_subject

logger = logging.getLogger(__name__)

_FIELDS = ("cpu_frac", "memory_frac", "network_bps", "lag_s")


class HeartbeatEmitter:
    """Sends heartbeats for ``sources`` every ``period_s``.

    Args:
        driver: Where utilisation and availability come from.
        site_id: Site (NATS subject).
        sources: Source ids (event processors, servers).
        transport: ``http`` (POST to ``target``) or ``nats`` (publish via ``target`` server URL).
        target: ``http://127.0.0.1:<port>`` or ``nats://127.0.0.1:4222``.
        period_s: Heartbeat period.
        now_s: Sender clock for ``t_s``.
    """

    def __init__(
        self,
        driver: Driver,
        site_id: str,
        sources: Sequence[str],
        transport: Literal["http", "nats"],
        target: str,
        period_s: float = 1.0,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        self.driver = driver
        self.site_id = site_id
        self.sources = tuple(sources)
        self.transport = transport
        self.target = target
        self.period_s = period_s
        self.now_s = now_s
        self.sent = 0
        self._seq: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._nats: Any = None

    async def start(self) -> None:
        """Connect and start sending."""
        if self.transport == "http":
            self._http = httpx.AsyncClient(base_url=self.target, timeout=1.0)
        else:
            import nats

            self._nats = await nats.connect(self.target, connect_timeout=2)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop sending and disconnect."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._http is not None:
            await self._http.aclose()
        if self._nats is not None:
            await self._nats.close()

    def payloads(self, readings: Sequence[Any]) -> list[tuple[str, bytes]]:
        """One heartbeat per available source, from the driver's readings."""
        values: dict[tuple[str, str], float] = {(r.device_id, r.metric): r.value for r in readings if not r.tags}
        out = []
        for source in self.sources:
            if values.get((source, "available"), 1.0) < 0.5:
                continue
            seq = self._seq.get(source, 0) + 1
            self._seq[source] = seq
            body: dict[str, Any] = {"v": 1, "id": source, "seq": seq, "t_s": self.now_s()}
            body.update({f: values[(source, f)] for f in _FIELDS if (source, f) in values})
            out.append((source, json.dumps(body).encode()))
        return out

    async def send_once(self) -> None:
        """Read the driver and send one round of heartbeats."""
        for source, payload in self.payloads(await self.driver.read()):
            if self._http is not None:
                await self._http.post(HTTP_PATH, content=payload, headers={"Content-Type": "application/json"})
            elif self._nats is not None:
                await self._nats.publish(nats_subject(self.site_id, source), payload)
            self.sent += 1
        if self._nats is not None:
            await self._nats.flush()

    async def _loop(self) -> None:
        while True:
            try:
                await self.send_once()
            except (httpx.HTTPError, OSError) as err:
                logger.debug("heartbeat send failed: %s", err)
            await asyncio.sleep(self.period_s)
