"""Leader election on an etcd lease through etcd's v3 JSON gateway (plain httpx).

Recipe verified in shared/PEERS.md section 5 (etcd 3.4); see docs/adr/0002-leader-election.md.
The fencing token is the revision of the transaction that created the leader key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from typing import Any

import httpx

from wattwise.control.lease import CampaignLog, LeaseClock, campaign_until
from wattwise.errors import LeadershipLost

logger = logging.getLogger(__name__)

KEY_PREFIX = "/wattwise/leader/"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


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
        self._lease = LeaseClock()
        self._keepalive: asyncio.Task[None] | None = None
        self._log = CampaignLog(identity, domain)

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
        return await campaign_until(self, self.poll_s, timeout_s)

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
