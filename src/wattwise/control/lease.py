"""The local side of a lease, shared by the leader electors: deadline, campaign loop, logging.

A leader is leader only until ``deadline_s`` (monotonic seconds): the time its last successful
renewal was *sent* plus the TTL, which always passes before the store's own expiry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

logger = logging.getLogger(__name__)


class Campaigner(Protocol):
    """What :func:`campaign_until` needs of an elector."""

    domain: str
    identity: str

    @property
    def token(self) -> int | None:
        """Fencing token while leader."""
        ...

    async def try_acquire(self) -> bool:
        """One non-blocking attempt."""
        ...


class LeaseClock:
    """Local view of a lease: leader until ``deadline`` (monotonic seconds)."""

    def __init__(self) -> None:
        self.token: int | None = None
        self.deadline_s = 0.0

    def valid(self) -> bool:
        """Whether we hold a token and its deadline has not passed."""
        return self.token is not None and time.monotonic() < self.deadline_s

    def renewed(self, sent_at_s: float, ttl_s: float) -> None:
        """A renewal sent at ``sent_at_s`` (monotonic) succeeded for ``ttl_s``."""
        self.deadline_s = sent_at_s + ttl_s

    def lost(self) -> None:
        """Leadership ended (resigned, expired, refused)."""
        self.token = None
        self.deadline_s = 0.0


class CampaignLog:
    """Logs the first failed campaign attempt of a streak and the recovery, not every poll."""

    def __init__(self, identity: str, domain: str) -> None:
        self.where = f"{identity} for {domain}"
        self.failures = 0

    def failed(self, err: Exception) -> None:
        """Record a failed attempt; logs the first of a streak."""
        if self.failures == 0:
            logger.warning("campaign of %s failing: %s", self.where, err)
        self.failures += 1

    def ok(self) -> None:
        """Record a successful round trip; logs the recovery after failures."""
        if self.failures:
            logger.info("campaign of %s recovered after %d failed attempts", self.where, self.failures)
        self.failures = 0


async def campaign_until(elector: Campaigner, poll_s: float, timeout_s: float | None) -> int:
    """Poll ``try_acquire`` until it wins (shared by both back-ends)."""
    start_s = time.monotonic()
    while True:
        if await elector.try_acquire():
            token = elector.token
            if token is not None:
                return token
        if timeout_s is not None and time.monotonic() - start_s > timeout_s:
            raise TimeoutError(f"{elector.identity} not leader of {elector.domain} within {timeout_s} s")
        await asyncio.sleep(poll_s)
