"""API tokens and roles: sha256-hashed at rest, with an optional expiry.

A token is shown once, when issued; the store keeps only its sha256 digest (and can save
the digests to a JSON file, never the tokens). ``Settings.admin_token`` seeds an admin.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr

from wattwise.api.schemas import Role
from wattwise.errors import ConfigError
from wattwise.model.clock import Clock, WallClock

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "ww_"


def digest(token: str) -> str:
    """sha256 hex digest of a token (what is stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    """A stored token: who, which role, until when, and the digest of the secret."""

    name: str
    role: Role
    sha256: str
    expires_t_s: float | None = None


class Verdict(StrEnum):
    """Outcome of checking a presented token."""

    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"


class TokenStore:
    """In-memory token store (optionally persisted as digests in a JSON file)."""

    def __init__(self, clock: Clock | None = None, path: Path | None = None) -> None:
        self.clock: Clock = clock or WallClock()
        self.path = path
        self._lock = threading.Lock()
        self._by_digest: dict[str, TokenRecord] = {}
        if path is not None and path.exists():
            self._load(path)

    @classmethod
    def from_admin_token(cls, admin_token: SecretStr | None, clock: Clock | None = None) -> TokenStore:
        """A store seeded with ``Settings.admin_token`` (when set) as the ``admin`` token."""
        store = cls(clock)
        if admin_token is not None and admin_token.get_secret_value():
            store.add(admin_token.get_secret_value(), "admin", Role.ADMIN)
        return store

    def add(self, token: str, name: str, role: Role, ttl_s: float | None = None) -> TokenRecord:
        """Register a token chosen by the caller (at least 16 characters)."""
        if len(token) < 16:
            raise ConfigError(f"token for {name!r} is too short (at least 16 characters)")
        expires = None if ttl_s is None else self.clock.now_s() + ttl_s
        record = TokenRecord(name=name, role=role, sha256=digest(token), expires_t_s=expires)
        with self._lock:
            self._by_digest = {d: r for d, r in self._by_digest.items() if r.name != name}
            self._by_digest[record.sha256] = record
        self._save()
        logger.info("token %s issued with role %s", name, role.value)
        return record

    def issue(self, name: str, role: Role, ttl_s: float | None = None) -> tuple[str, TokenRecord]:
        """Create a new random token; returns it (shown once) and its record."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        return token, self.add(token, name, role, ttl_s)

    def check(self, token: str) -> tuple[Verdict, TokenRecord | None]:
        """Check a presented token."""
        with self._lock:
            record = self._by_digest.get(digest(token))
        if record is None:
            return Verdict.UNKNOWN, None
        if record.expires_t_s is not None and self.clock.now_s() >= record.expires_t_s:
            return Verdict.EXPIRED, record
        return Verdict.OK, record

    def revoke(self, name: str) -> bool:
        """Remove every token of ``name``; whether one existed."""
        with self._lock:
            before = len(self._by_digest)
            self._by_digest = {d: r for d, r in self._by_digest.items() if r.name != name}
            found = len(self._by_digest) < before
        self._save()
        return found

    def records(self) -> tuple[TokenRecord, ...]:
        """Every stored record, sorted by name."""
        with self._lock:
            return tuple(sorted(self._by_digest.values(), key=lambda r: r.name))

    def _save(self) -> None:
        if self.path is None:
            return
        rows = [{**asdict(r), "role": r.role.value} for r in self.records()]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.chmod(0o600)
        tmp.replace(self.path)

    def _load(self, path: Path) -> None:
        try:
            rows = json.loads(path.read_text())
            for row in rows:
                rec = TokenRecord(
                    name=str(row["name"]),
                    role=Role(row["role"]),
                    sha256=str(row["sha256"]),
                    expires_t_s=None if row.get("expires_t_s") is None else float(row["expires_t_s"]),
                )
                self._by_digest[rec.sha256] = rec
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"cannot read token file {path}: {err}") from err
