"""Actuation values: modes, journal entries, the journal contract and interlock contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from wattwise.model.values import Action


class Mode(StrEnum):
    """What the actuator does with a decision."""

    OBSERVE = "observe"
    DRY_RUN = "dry-run"
    ARMED = "armed"


class Phase(StrEnum):
    """Life of a command in the journal."""

    PLANNED = "planned"
    DRY_RUN = "dry-run"
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    REFUSED = "refused"
    SENT = "sent"
    ACKED = "acked"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One line of the action journal (written before sending and after the answer).

    Attributes:
        command_id: Idempotency key of the action.
        t_s: When this phase happened.
        phase: Planned, sent, acked, failed, refused…
        kind: Action kind.
        target_id: Device, service or workload acted on.
        value: The action's value (SI), if any.
        reason: Why (from the decision, or the refusal reason).
        decision_id: The decision that produced the action.
        actor: ``controller`` or the operator who approved or triggered it.
        fencing_token: The leader's token when it was sent.
        message: Device answer or error.
    """

    command_id: str
    t_s: float
    phase: Phase
    kind: str
    target_id: str
    value: float | None
    reason: str
    decision_id: str
    actor: str = "controller"
    fencing_token: int | None = None
    message: str = ""

    @classmethod
    def of(cls, action: Action, phase: Phase, t_s: float, message: str = "", actor: str = "controller") -> JournalEntry:
        """Entry for an action at a phase."""
        return cls(
            command_id=action.command_id,
            t_s=t_s,
            phase=phase,
            kind=str(action.kind),
            target_id=action.target_id,
            value=action.value,
            reason=action.reason,
            decision_id=action.decision_id,
            actor=actor,
            fencing_token=action.fencing_token,
            message=message,
        )


class Journal(Protocol):
    """Append-only action journal (the store implements it; memory for tests)."""

    def append(self, entry: JournalEntry) -> None:
        """Persist one entry durably before returning."""
        ...

    def append_many(self, entries: Sequence[JournalEntry]) -> None:
        """Persist several entries durably (all or none) before returning."""
        ...

    def entries(self, since_s: float = 0.0, limit: int = 1000) -> list[JournalEntry]:
        """Entries at or after ``since_s``, oldest first."""
        ...


class MemoryJournal:
    """In-process journal (tests, what-if plans)."""

    def __init__(self) -> None:
        self._entries: list[JournalEntry] = []

    def append(self, entry: JournalEntry) -> None:
        """Keep the entry."""
        self._entries.append(entry)

    def append_many(self, entries: Sequence[JournalEntry]) -> None:
        """Keep the entries."""
        self._entries.extend(entries)

    def entries(self, since_s: float = 0.0, limit: int = 1000) -> list[JournalEntry]:
        """Entries at or after ``since_s``."""
        return [e for e in self._entries if e.t_s >= since_s][-limit:]
