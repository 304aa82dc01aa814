"""The clock every loop runs on: the wall clock in production, a ``SimClock`` in the twin and tests.

The same controller code runs on either (SimPy's ``Environment`` vs ``RealtimeEnvironment``).

>>> clock = SimClock(start_s=100.0)
>>> import asyncio; asyncio.run(clock.sleep_s(5.0)); clock.now_s()
105.0
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Time source: seconds as floats."""

    def now_s(self) -> float:
        """Current time, s."""
        ...

    async def sleep_s(self, duration_s: float) -> None:
        """Wait ``duration_s`` seconds of this clock's time."""
        ...


class WallClock:
    """Real time (Unix epoch seconds)."""

    def now_s(self) -> float:
        """Current Unix time, s."""
        return time.time()

    async def sleep_s(self, duration_s: float) -> None:
        """Sleep in real time."""
        await asyncio.sleep(max(0.0, duration_s))


class SimClock:
    """Simulated time that advances only when slept on or stepped (never waits for real)."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.start_s = start_s
        self._now_s = start_s

    def now_s(self) -> float:
        """Current simulated time, s."""
        return self._now_s

    def advance_s(self, duration_s: float) -> None:
        """Move time forward without awaiting."""
        if duration_s < 0:
            raise ValueError(f"cannot move a clock backwards by {duration_s} s")
        self._now_s += duration_s

    async def sleep_s(self, duration_s: float) -> None:
        """Advance simulated time and yield to other tasks once."""
        self.advance_s(max(0.0, duration_s))
        await asyncio.sleep(0)
