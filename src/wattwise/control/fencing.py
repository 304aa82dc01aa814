"""Fencing tokens, checked where the action lands, so a deposed leader can never act.

A leader's token is a number that only grows from one leadership to the next (the etcd
revision that created the leader key, or a PostgreSQL sequence value; see
:mod:`wattwise.control.leader`). Every command carries the token of the leader that sent it.
The device side (a driver, the twin, a protocol emulator) keeps a :class:`FencingGate`: it
remembers the highest token seen per power domain and refuses any command with a lower one.
A leader that was paused (GC, SIGSTOP, a partition) and wakes up still believing it leads is
therefore refused as soon as its successor has sent a single command (Kleppmann's fencing).

:class:`FencedDriver` puts a gate in front of any :class:`~wattwise.drivers.base.Driver`; the
check and the inner ``apply`` run under one lock per domain so a stale command can never
overtake a newer one between the check and the device.

>>> gate = FencingGate()
>>> gate.admit("hall-1", 7) is None
True
>>> gate.admit("hall-1", 6)
'fenced: token 6 < 7'
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from wattwise.drivers.base import Driver
from wattwise.model.values import Action, ActionKind, ActionResult, Reading

logger = logging.getLogger(__name__)

DomainOf = Callable[[Action], str]


class FencingGate:
    """Remembers the highest fencing token seen per power domain and refuses lower ones.

    Thread-safe (emulators serve requests from threads). With ``state_path`` the highest
    tokens survive a restart of the device side: a gate that forgot them would let a
    stale leader act again.

    Args:
        state_path: JSON file holding ``{domain: highest_token}``; ``None`` keeps memory only.
        require_token: Refuse commands that carry no token at all.
    """

    def __init__(self, state_path: Path | None = None, require_token: bool = True) -> None:
        self.state_path = state_path
        self.require_token = require_token
        self._lock = threading.Lock()
        self._highest: dict[str, int] = {}
        self.refused = 0
        if state_path is not None and state_path.exists():
            raw = json.loads(state_path.read_text())
            self._highest = {str(k): int(v) for k, v in raw.items()}

    def highest(self, domain: str) -> int | None:
        """The highest token admitted for ``domain``, or ``None`` if none yet."""
        with self._lock:
            return self._highest.get(domain)

    def admit(self, domain: str, token: int | None) -> str | None:
        """Check ``token`` for ``domain`` and remember it when it is the new highest.

        Args:
            domain: Power domain the command acts in.
            token: The sender's fencing token.

        Returns:
            ``None`` when admitted, else the refusal message (``fenced: token N < M``).
        """
        with self._lock:
            if token is None:
                if not self.require_token:
                    return None
                self.refused += 1
                return "fenced: no token"
            current = self._highest.get(domain)
            if current is not None and token < current:
                self.refused += 1
                return f"fenced: token {token} < {current}"
            if current != token:
                self._highest[domain] = token
                self._persist()
            return None

    def _persist(self) -> None:
        if self.state_path is None:
            return
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._highest))
        os.replace(tmp, self.state_path)


class FencedDriver:
    """A driver whose actions pass a :class:`FencingGate` first (reads pass through).

    Args:
        inner: The driver that talks to the device.
        gate: The gate (one per device, or shared by the drivers of one emulator).
        domain: The power domain of every action, or a function giving it per action.
    """

    def __init__(self, inner: Driver, gate: FencingGate, domain: str | DomainOf) -> None:
        self.inner = inner
        self.gate = gate
        self.domain = domain
        self.name = inner.name
        self._locks: dict[str, asyncio.Lock] = {}

    def _domain_of(self, action: Action) -> str:
        return self.domain if isinstance(self.domain, str) else self.domain(action)

    def supports(self, kind: ActionKind) -> bool:
        """Whatever the inner driver supports."""
        return self.inner.supports(kind)

    async def read(self) -> list[Reading]:
        """Readings of the inner driver (reading is never fenced)."""
        return await self.inner.read()

    async def apply(self, action: Action) -> ActionResult:
        """Apply ``action`` only if its token is not older than the newest seen in its domain."""
        domain = self._domain_of(action)
        lock = self._locks.setdefault(domain, asyncio.Lock())
        async with lock:
            refusal = self.gate.admit(domain, action.fencing_token)
            if refusal is not None:
                logger.warning(
                    "refused %s %s on %s in domain %s: %s",
                    action.kind,
                    action.command_id,
                    action.target_id,
                    domain,
                    refusal,
                )
                return ActionResult(command_id=action.command_id, ok=False, message=refusal)
            return await self.inner.apply(action)

    async def close(self) -> None:
        """Close the inner driver."""
        await self.inner.close()
