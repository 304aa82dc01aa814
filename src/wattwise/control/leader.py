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
crash, whose socket the kernel closes; ``idle_session_timeout_s`` on a silent partition)
+ ``poll_s``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import zlib
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import httpx
import psycopg

from wattwise.errors import LeadershipLost

logger = logging.getLogger(__name__)

KEY_PREFIX = "/wattwise/leader/"
_PG_LOCK_CLASS = 0x5757  # "WW": namespace of wattwise's advisory locks


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


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class _LeaseClock:
    """Local view of a lease: leader until ``deadline`` (monotonic seconds)."""

    def __init__(self) -> None:
        self.token: int | None = None
        self.deadline_s = 0.0

    def valid(self) -> bool:
        return self.token is not None and time.monotonic() < self.deadline_s

    def renewed(self, sent_at_s: float, ttl_s: float) -> None:
        self.deadline_s = sent_at_s + ttl_s

    def lost(self) -> None:
        self.token = None
        self.deadline_s = 0.0


class _CampaignLog:
    """Logs the first failed campaign attempt of a streak and the recovery, not every poll."""

    def __init__(self, identity: str, domain: str) -> None:
        self.where = f"{identity} for {domain}"
        self.failures = 0

    def failed(self, err: Exception) -> None:
        if self.failures == 0:
            logger.warning("campaign of %s failing: %s", self.where, err)
        self.failures += 1

    def ok(self) -> None:
        if self.failures:
            logger.info("campaign of %s recovered after %d failed attempts", self.where, self.failures)
        self.failures = 0


async def _campaign(elector: LeaderElector, poll_s: float, timeout_s: float | None) -> int:
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


class EtcdLeaderElector:
    """Leader election on an etcd lease through the v3 JSON gateway (``/v3/...``).

    Args:
        url: etcd client URL, e.g. ``http://127.0.0.1:2379``.
        domain: Power domain this election is for.
        identity: Name of this controller (stored as the key's value).
        ttl_s: Lease TTL requested; etcd may raise it to its minimum.
        poll_s: Interval between campaign attempts.
        client: An ``httpx.AsyncClient`` to use (tests inject transports); one is made if absent.
    """

    def __init__(
        self,
        url: str,
        domain: str,
        identity: str,
        ttl_s: float = 2.0,
        poll_s: float = 0.1,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.domain = domain
        self.identity = identity
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self.key = KEY_PREFIX + domain
        self._http = client or httpx.AsyncClient(base_url=self.url + "/v3", timeout=max(0.5, ttl_s / 2))
        self._lease_id: str | None = None
        self._granted_ttl_s = ttl_s
        self._lease = _LeaseClock()
        self._keepalive: asyncio.Task[None] | None = None
        self._log = _CampaignLog(identity, domain)

    @property
    def token(self) -> int | None:
        """Fencing token: the etcd revision that created our leader key."""
        return self._lease.token if self._lease.valid() else None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = await self._http.post(path, json=body)
            resp.raise_for_status()
            data: dict[str, Any] = resp.json()
        except (httpx.HTTPError, ValueError) as err:
            raise LeadershipLost(f"etcd {path} failed for {self.domain}: {err}") from err
        return data

    async def leader(self) -> str | None:
        """Identity of the current leader of the domain, or ``None``."""
        kvs = (await self._post("/kv/range", {"key": _b64(self.key)})).get("kvs", [])
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None

    async def try_acquire(self) -> bool:
        """Create the leader key bound to our lease iff it does not exist."""
        if self._lease.valid():
            return True
        if self._lease.token is not None:  # a lapsed leadership: clean it up before trying again
            await self.resign()
        try:
            if await self.leader() is not None:
                self._log.ok()
                return False
            sent_at_s = time.monotonic()
            grant = await self._post("/lease/grant", {"TTL": max(1, round(self.ttl_s))})
            self._lease_id = str(grant["ID"])
            self._granted_ttl_s = float(grant.get("TTL", self.ttl_s))
            txn = await self._post("/kv/txn", self._create_txn(self._lease_id))
        except LeadershipLost as err:
            self._log.failed(err)
            return False
        self._log.ok()
        if not txn.get("succeeded", False):
            await self._revoke()
            return False
        self._lease.token = int(txn["header"]["revision"])
        self._lease.renewed(sent_at_s, self._granted_ttl_s)
        self._keepalive = asyncio.create_task(self._keep_alive(), name=f"etcd-keepalive-{self.domain}")
        logger.info("%s is leader of %s (token %d)", self.identity, self.domain, self._lease.token)
        return True

    def _create_txn(self, lease_id: str) -> dict[str, Any]:
        key = _b64(self.key)
        return {
            "compare": [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": {"key": key, "value": _b64(self.identity), "lease": lease_id}}],
            "failure": [{"request_range": {"key": key}}],
        }

    async def _keep_alive(self) -> None:
        """Renew the lease every third of its TTL until it is refused or leadership ends."""
        period_s = self._granted_ttl_s / 3.0
        while self._lease.token is not None:
            await asyncio.sleep(period_s)
            sent_at_s = time.monotonic()
            try:
                resp = await self._post("/lease/keepalive", {"ID": self._lease_id})
                ttl_s = float(resp.get("result", {}).get("TTL", 0))
            except LeadershipLost as err:
                logger.warning("keepalive of %s for %s failed: %s", self.identity, self.domain, err)
                if not self._lease.valid():
                    self._lose("keepalive failed past the lease deadline")
                    return
                continue
            if ttl_s <= 0:
                self._lose("lease expired")
                return
            self._lease.renewed(sent_at_s, ttl_s)

    def _lose(self, why: str) -> None:
        if self._lease.token is not None:
            logger.warning("%s lost leadership of %s: %s", self.identity, self.domain, why)
        self._lease.lost()

    async def campaign(self, timeout_s: float | None = None) -> int:
        """Poll until leader; return the fencing token."""
        return await _campaign(self, self.poll_s, timeout_s)

    async def is_leader(self) -> bool:
        """Whether our lease is held and within its local deadline."""
        return self._lease.valid()

    async def ensure_leader(self) -> int:
        """The token, or raise :class:`LeadershipLost`."""
        token = self.token
        if token is None:
            raise LeadershipLost(f"{self.identity} is not leader of {self.domain}")
        return token

    async def _revoke(self) -> None:
        if self._lease_id is None:
            return
        with contextlib.suppress(LeadershipLost):
            await self._post("/lease/revoke", {"ID": self._lease_id})
        self._lease_id = None

    async def resign(self) -> None:
        """Stop renewing and revoke the lease (deletes the key: a follower wins at once)."""
        self._lease.lost()
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
            self._keepalive = None
        await self._revoke()

    async def close(self) -> None:
        """Resign and close the HTTP client."""
        await self.resign()
        await self._http.aclose()


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
        self._lease = _LeaseClock()
        self._keepalive: asyncio.Task[None] | None = None
        self._log = _CampaignLog(identity, domain)

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
        return await _campaign(self, self.poll_s, timeout_s)

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
