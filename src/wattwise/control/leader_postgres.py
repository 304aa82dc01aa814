"""Leader election on a PostgreSQL session advisory lock; fencing tokens from a sequence.

See docs/adr/0002-leader-election.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from typing import Any

import psycopg

from wattwise.control.lease import CampaignLog, LeaseClock, campaign_until
from wattwise.errors import LeadershipLost

logger = logging.getLogger(__name__)

_PG_LOCK_CLASS = 0x5757  # "WW": namespace of wattwise's advisory locks


class PostgresLeaderElector:
    """Leader election on a PostgreSQL session advisory lock, tokens from a sequence.

    The lock lives as long as the session: a crashed leader's socket is closed by its kernel
    and the server frees the lock at once. ``idle_session_timeout`` bounds how long a silent
    (partitioned) leader's session can keep it; the keepalive query runs well inside it.

    Args:
        dsn: PostgreSQL connection string.
        domain: Power domain this election is for.
        identity: Name of this controller.
        lease_s: How long one successful check keeps us leader locally.
        poll_s: Interval between campaign attempts.
        sequence: Name of the token sequence (created if missing).
    """

    def __init__(
        self,
        dsn: str,
        domain: str,
        identity: str,
        lease_s: float = 2.0,
        poll_s: float = 0.1,
        sequence: str = "wattwise_fencing_token",
    ) -> None:
        self.dsn = dsn
        self.domain = domain
        self.identity = identity
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.sequence = sequence
        self.lock_id = zlib.crc32(domain.encode()) - 2**31  # signed int4, stable across processes
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lease = LeaseClock()
        self._keepalive: asyncio.Task[None] | None = None
        self._log = CampaignLog(identity, domain)

    @property
    def token(self) -> int | None:
        """Fencing token: the sequence value drawn when the lock was won."""
        return self._lease.token if self._lease.valid() else None

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            timeout_ms = int(self.lease_s * 1000)
            self._conn = await psycopg.AsyncConnection.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=max(1, round(self.lease_s)),
                application_name=f"wattwise:{self.identity}"[:63],  # lets leader() name the holder
            )
            await self._conn.execute(f"SET idle_session_timeout = {timeout_ms * 2}")
            await self._conn.execute(f"SET statement_timeout = {timeout_ms}")
            await self._conn.execute(f"CREATE SEQUENCE IF NOT EXISTS {self.sequence}")
        return self._conn

    async def _scalar(self, sql: str, *params: int) -> Any:
        conn = await self._connection()
        cur = await conn.execute(sql, params)
        row = await cur.fetchone()
        return None if row is None else row[0]

    async def try_acquire(self) -> bool:
        """Try the advisory lock once; on success draw a new token."""
        if self._lease.valid():
            return True
        if self._lease.token is not None:  # a lapsed leadership: clean it up before trying again
            await self.resign()
        sent_at_s = time.monotonic()
        try:
            won = await self._scalar("SELECT pg_try_advisory_lock(%s::int, %s::int)", _PG_LOCK_CLASS, self.lock_id)
            if not won:
                self._log.ok()
                return False
            token = int(await self._scalar(f"SELECT nextval('{self.sequence}')"))
        except psycopg.Error as err:
            self._log.failed(err)
            await self._drop_connection()
            return False
        self._log.ok()
        self._lease.token = token
        self._lease.renewed(sent_at_s, self.lease_s)
        self._keepalive = asyncio.create_task(self._keep_alive(), name=f"pg-keepalive-{self.domain}")
        logger.info("%s is leader of %s (token %d)", self.identity, self.domain, token)
        return True

    async def leader(self) -> str | None:
        """Identity of the session holding the domain's lock (from its ``application_name``)."""
        sql = (
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.classid = %s::int::oid AND l.objid = %s::int::oid AND l.granted"
        )
        try:
            name = await self._scalar(sql, _PG_LOCK_CLASS, self.lock_id)
        except psycopg.Error as err:
            raise LeadershipLost(f"cannot read the leader of {self.domain}: {err}") from err
        return None if name is None else str(name).removeprefix("wattwise:")

    async def _keep_alive(self) -> None:
        """Confirm every third of ``lease_s`` that our session still holds the lock."""
        sql = (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            " AND classid = %s::int::oid AND objid = %s::int::oid AND granted"
        )
        while self._lease.token is not None:
            await asyncio.sleep(self.lease_s / 3.0)
            sent_at_s = time.monotonic()
            try:
                held = int(await self._scalar(sql, _PG_LOCK_CLASS, self.lock_id)) > 0
            except psycopg.Error as err:
                self._lose(f"session failed: {err}")
                await self._drop_connection()
                return
            if not held:
                self._lose("advisory lock no longer held")
                return
            self._lease.renewed(sent_at_s, self.lease_s)

    def _lose(self, why: str) -> None:
        if self._lease.token is not None:
            logger.warning("%s lost leadership of %s: %s", self.identity, self.domain, why)
        self._lease.lost()

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                await self._conn.close()
        self._conn = None

    async def campaign(self, timeout_s: float | None = None) -> int:
        """Poll until leader; return the fencing token."""
        return await campaign_until(self, self.poll_s, timeout_s)

    async def is_leader(self) -> bool:
        """Whether the lock is held and within its local deadline."""
        return self._lease.valid()

    async def ensure_leader(self) -> int:
        """The token, or raise :class:`LeadershipLost`."""
        token = self.token
        if token is None:
            raise LeadershipLost(f"{self.identity} is not leader of {self.domain}")
        return token

    async def resign(self) -> None:
        """Release the advisory lock."""
        was_leader = self._lease.token is not None
        self._lease.lost()
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
            self._keepalive = None
        if was_leader and self._conn is not None and not self._conn.closed:
            try:
                await self._scalar("SELECT pg_advisory_unlock(%s::int, %s::int)", _PG_LOCK_CLASS, self.lock_id)
            except psycopg.Error:
                await self._drop_connection()  # closing the session frees the lock too

    async def close(self) -> None:
        """Resign and close the session."""
        await self.resign()
        await self._drop_connection()
