"""Timeouts and bounded retries with exponential back-off, shared by every driver.

Only :class:`wattwise.errors.DeviceUnavailable` is retried: an auth error needs a human and a
protocol error will not heal by asking again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from wattwise.errors import DeviceUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard a driver tries before giving up on one call.

    Attributes:
        timeout_s: Deadline of one attempt (connect + request + answer).
        attempts: Total attempts, at least 1.
        backoff_s: Delay before the second attempt; doubles after each failure.
        max_backoff_s: Upper bound of one delay.
    """

    timeout_s: float = 2.0
    attempts: int = 2
    backoff_s: float = 0.05
    max_backoff_s: float = 1.0

    def delay_s(self, failures: int) -> float:
        """Back-off before the next attempt after ``failures`` failed attempts (>= 1)."""
        return float(min(self.max_backoff_s, self.backoff_s * 2.0 ** (failures - 1)))


async def call_with_retries(
    op: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    what: str,
    device_id: str | None = None,
    url: str | None = None,
) -> T:
    """Run ``op`` under ``policy``: each attempt under a timeout, only transient errors retried.

    Args:
        op: Zero-argument coroutine factory; called once per attempt.
        policy: Timeout, attempts and back-off.
        what: Short description for messages (``"LIST VAR ups1"``).
        device_id: Device for the raised error.
        url: Endpoint (no credentials) for the raised error.

    Returns:
        What ``op`` returned.

    Raises:
        DeviceUnavailable: Every attempt timed out or failed transiently.
        DriverError: A non-transient error from ``op`` (raised at once).
    """
    last: DeviceUnavailable | None = None
    for attempt in range(1, max(1, policy.attempts) + 1):
        try:
            # asyncio.timeout, not wait_for: no extra task per call (measurable at 1 000 devices).
            async with asyncio.timeout(policy.timeout_s):
                return await op()
        except TimeoutError as err:
            last = DeviceUnavailable(f"{what}: no answer within {policy.timeout_s} s", device_id=device_id, url=url)
            last.__cause__ = err
        except DeviceUnavailable as err:
            last = err
        if attempt < policy.attempts:
            await asyncio.sleep(policy.delay_s(attempt))
    assert last is not None
    raise last
