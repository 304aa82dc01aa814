"""Leader election per power domain: an etcd lease, or a PostgreSQL advisory lock.

Two or three controllers run; for each power domain exactly one is leader and acts, the
others keep warm state and campaign. A leader holds a *lease* and renews it from a keepalive
task; it considers itself leader only while its local deadline (the time the last successful
renewal was *sent* plus the lease TTL) lies in the future, so it stops acting no later than
the store can hand the lease to somebody else. Everything a leader sends carries its
*fencing token* (see :mod:`wattwise.control.fencing`), which covers what the local deadline
cannot: a process paused between its check and its send.

Tokens only grow across leaderships of one domain:

* etcd: the revision at which this leader created the leader key (``create_revision``);
  etcd revisions are global and monotonic, and the key is created anew by every leader.
* PostgreSQL: ``nextval`` of a sequence, taken after ``pg_try_advisory_lock`` succeeded.

Do not mix back-ends for one domain: their token spaces are unrelated.

Take-over time after a leader dies (see docs/adr/0002-leader-election.md): etcd, at most
``ttl_s`` (the remaining lease) + etcd's lease-expiry check (about 0.5 s) + ``poll_s``;
PostgreSQL, the time the server needs to notice the dead session (immediate on a process
crash, whose socket the kernel closes; ``idle_session_timeout`` = 2 x ``lease_s`` on a
silent partition) + ``poll_s``.

Layout: this module holds the contract; the back-ends are
:mod:`wattwise.control.leader_etcd` and :mod:`wattwise.control.leader_postgres`, sharing the
local lease logic of :mod:`wattwise.control.lease`. Synchronous callers (the control loop's
``is_leader``, the actuator's ``token``) use :func:`loop_hooks`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from wattwise.control.leader_etcd import KEY_PREFIX, EtcdLeaderElector
from wattwise.control.leader_postgres import PostgresLeaderElector

__all__ = [
    "KEY_PREFIX",
    "EtcdLeaderElector",
    "LeaderElector",
    "PostgresLeaderElector",
    "keep_campaigning",
    "loop_hooks",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class LeaderElector(Protocol):
    """Campaigns for, holds and gives up the leadership of one power domain."""

    domain: str
    identity: str

    @property
    def token(self) -> int | None:
        """Fencing token of the current leadership, ``None`` when not leader."""
        ...

    async def try_acquire(self) -> bool:
        """One non-blocking attempt; starts the keepalive task when it wins."""
        ...

    async def campaign(self, timeout_s: float | None = None) -> int:
        """Wait until leader and return the fencing token.

        Raises:
            TimeoutError: Not leader within ``timeout_s``.
        """
        ...

    async def is_leader(self) -> bool:
        """Whether this controller may act now (lease held and not past its local deadline)."""
        ...

    async def leader(self) -> str | None:
        """Identity of the controller that leads the domain now, or ``None``."""
        ...

    async def resign(self) -> None:
        """Give the leadership up at once so a follower takes over without waiting a TTL."""
        ...

    async def close(self) -> None:
        """Resign if leader and release connections."""
        ...


def loop_hooks(elector: LeaderElector) -> tuple[Callable[[], bool], Callable[[], int | None]]:
    """The synchronous ``is_leader`` and ``token`` callables the control loop and actuator take.

    Both read the elector's local lease view (no I/O), so they are cheap to call per action.
    """
    return (lambda: elector.token is not None), (lambda: elector.token)


async def keep_campaigning(elector: LeaderElector, poll_s: float = 0.1) -> None:
    """Run for ever (as a task): campaign whenever not leader, so a follower is always ready.

    Cancel the task and ``close()`` the elector to stop; a cancelled leader resigns at once.
    """
    try:
        while True:
            token = await elector.campaign()
            logger.info("%s leads %s with token %d", elector.identity, elector.domain, token)
            while await elector.is_leader():  # noqa: ASYNC110 - the lease has no event to wait on
                await asyncio.sleep(poll_s)
            logger.warning("%s no longer leads %s; campaigning again", elector.identity, elector.domain)
    except asyncio.CancelledError:
        await elector.resign()
        raise
