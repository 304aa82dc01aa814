"""Building blocks for backends: an in-memory journal, SSE subscribers, down-sampling.

Used by :class:`~wattwise.api.static_backend.StaticBackend`; an adapter over the real store
and controller may reuse ``Subscribers`` and ``downsample``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import numpy as np
import numpy.typing as npt

from wattwise.api.schemas import Actor, Event, History, HistoryPoint, JournalEntry, JournalPage
from wattwise.api.views import utc


class Journal:
    """Append-only in-memory journal (the store's journal replaces it in production)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: list[JournalEntry] = []
        self._seq = 0

    def add(
        self, t_s: float, actor: Actor, kind: str, target: str, detail: str, command_id: str | None
    ) -> JournalEntry:
        """Append one entry and return it."""
        with self._lock:
            self._seq += 1
            entry = JournalEntry(
                seq=self._seq,
                t_s=t_s,
                at=utc(t_s),
                actor=actor.name,
                role=actor.role.value,
                kind=kind,
                target=target,
                detail=detail,
                command_id=command_id,
            )
            self._entries.append(entry)
            del self._entries[: -self.max_entries]
            return entry

    def page(self, limit: int, before_seq: int | None) -> JournalPage:
        """Newest first, at most ``limit`` entries with ``seq < before_seq``."""
        with self._lock:
            entries = self._entries if before_seq is None else [e for e in self._entries if e.seq < before_seq]
            total = len(self._entries)
            items = tuple(reversed(entries[-limit:])) if limit > 0 else ()
        return JournalPage(items=items, total=total)


_CLOSED = None


class Subscribers:
    """Fan-out of events to SSE subscribers; ``publish`` is safe from any thread."""

    def __init__(self, queue_len: int = 256) -> None:
        self.queue_len = queue_len
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queues: set[asyncio.Queue[Event | None]] = set()
        self._closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the loop that serves the subscribers."""
        self._loop = loop
        self._closed = False

    def publish(self, event: Event) -> None:
        """Send an event to every subscriber (a slow subscriber loses its oldest events)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fan_out(event)
        else:
            loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: Event | None) -> None:
        for q in list(self._queues):
            if q.full():
                q.get_nowait()
            q.put_nowait(event)

    def close(self) -> None:
        """End every subscription."""
        self._closed = True
        self._fan_out(_CLOSED)

    async def subscribe(self) -> AsyncIterator[Event]:
        """Yield events until closed."""
        q: asyncio.Queue[Event | None] = asyncio.Queue(self.queue_len)
        self._queues.add(q)
        try:
            while not self._closed:
                event = await q.get()
                if event is None:
                    return
                yield event
        finally:
            self._queues.discard(q)


def downsample(
    device_id: str,
    metric: str,
    t_s: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    start_s: float | None,
    end_s: float | None,
    max_points: int,
) -> History:
    """Bucket raw points into at most ``max_points`` equal-width buckets (mean, min, max)."""
    lo = float(t_s.min()) if start_s is None and t_s.size else (start_s or 0.0)
    hi = float(t_s.max()) if end_s is None and t_s.size else (end_s if end_s is not None else lo)
    mask = (t_s >= lo) & (t_s <= hi)
    t, v = t_s[mask], values[mask]
    n_buckets = max(1, min(max_points, t.size))
    step_s = (hi - lo) / n_buckets if hi > lo else 0.0
    points: list[HistoryPoint] = []
    if t.size:
        bucket = np.zeros(t.size, dtype=np.int64) if step_s == 0 else np.minimum((t - lo) // step_s, n_buckets - 1)
        bucket = bucket.astype(np.int64)
        for b in np.unique(bucket):
            sel = v[bucket == b]
            points.append(
                HistoryPoint(
                    t_s=lo + (float(b) + 0.5) * step_s,
                    mean=float(sel.mean()),
                    min=float(sel.min()),
                    max=float(sel.max()),
                    n=int(sel.size),
                )
            )
    return History(
        device_id=device_id,
        metric=metric,
        start_s=lo,
        end_s=hi,
        step_s=step_s,
        points=tuple(points),
        raw_points=int(t.size),
    )
