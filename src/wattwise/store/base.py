"""The one contract of every time-series store (DuckDB embedded, PostgreSQL shared), and its values.

The store keeps validated readings, their down-sampled roll-ups, the action journal and the
model registry. Every backend passes the same contract suite (``tests/store/test_contract.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from wattwise.model.values import Reading
from wattwise.telemetry.batch import ReadingBatch

Phase = Literal["planned", "dry-run", "pending", "approved", "denied", "refused", "sent", "acked", "failed"]
PHASES: tuple[Phase, ...] = (
    "planned",
    "dry-run",
    "pending",
    "approved",
    "denied",
    "refused",
    "sent",
    "acked",
    "failed",
)

TAG_COLUMNS: tuple[str, ...] = ("application", "os", "load_level", "site", "rack", "feed")
"""Tags stored as their own columns (so they can be grouped on); other tags are kept as JSON."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one batch write did.

    Attributes:
        inserted: Rows newly stored.
        duplicates: Rows already stored (same device, metric and time), per device.
    """

    inserted: int
    duplicates: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One down-sampling bucket of a series: ``[t_s, t_s + step_s)``."""

    t_s: float
    min_value: float
    mean_value: float
    max_value: float
    count: int


@dataclass(frozen=True, slots=True)
class TagAggregate:
    """A metric aggregated over every reading carrying one tag value (one app, one feed).

    ``sum_of_device_means`` adds each device's mean: for ``power_w`` per ``feed`` it is the
    feed's average total draw over the range, W.
    """

    tag_value: str
    count: int
    device_count: int
    min_value: float
    mean_value: float
    max_value: float
    sum_of_device_means: float = 0.0


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What a retention pass did."""

    rolled_up_buckets: int
    deleted_raw: int
    deleted_rollups: int


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One step in the life of one command (written before the command is sent).

    Attributes:
        command_id: The action's deterministic id.
        t_s: When this phase happened, s.
        phase: planned, sent, acked, failed, refused, approved or denied.
        kind: The ``ActionKind`` value.
        target_id: The device/workload/service acted on.
        value: The action's quantity in SI (W, fraction, °C) or ``None``.
        reason: Why the action was planned.
        decision_id: The decision that produced it.
        actor: Who did this step (controller id, user name).
        fencing_token: The leader's fencing token, if any.
        message: Device answer or refusal text.
    """

    command_id: str
    t_s: float
    phase: Phase
    kind: str
    target_id: str
    value: float | None = None
    reason: str = ""
    decision_id: str = ""
    actor: str = ""
    fencing_token: int | None = None
    message: str = ""


class JournalRecord(Protocol):
    """Anything shaped like a journal entry (``wattwise.act.base.JournalEntry`` fits as is)."""

    @property
    def command_id(self) -> str: ...  # noqa: D102
    @property
    def t_s(self) -> float: ...  # noqa: D102
    @property
    def phase(self) -> str: ...  # noqa: D102
    @property
    def kind(self) -> str: ...  # noqa: D102
    @property
    def target_id(self) -> str: ...  # noqa: D102
    @property
    def value(self) -> float | None: ...  # noqa: D102
    @property
    def reason(self) -> str: ...  # noqa: D102
    @property
    def decision_id(self) -> str: ...  # noqa: D102
    @property
    def actor(self) -> str: ...  # noqa: D102
    @property
    def fencing_token(self) -> int | None: ...  # noqa: D102
    @property
    def message(self) -> str: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One saved model version (the blob is the serialized model)."""

    name: str
    version: str
    t_s: float
    blob: bytes
    meta: Mapping[str, object]


@runtime_checkable
class TimeSeriesStore(Protocol):
    """Readings, roll-ups, journal and model registry behind one interface."""

    def schema_version(self) -> int:
        """Highest migration applied."""
        ...

    def write(self, batch: ReadingBatch) -> WriteResult:
        """Store validated readings in one transaction; duplicates are skipped and counted.

        Raises:
            StoreError: The write failed; nothing of the batch was committed.
        """
        ...

    def latest(self, device_ids: Sequence[str] | None = None, metrics: Sequence[str] | None = None) -> list[Reading]:
        """The newest reading per device and metric (optionally filtered)."""
        ...

    def latest_batch(
        self, device_ids: Sequence[str] | None = None, metrics: Sequence[str] | None = None
    ) -> ReadingBatch:
        """``latest`` as columns (no per-reading objects): what a vectorized consumer should call."""
        ...

    def range(self, device_id: str, metric: str, start_s: float, end_s: float, step_s: float) -> list[Bucket]:
        """Min/mean/max per ``step_s`` bucket over ``[start_s, end_s)``, raw and rolled-up data together."""
        ...

    def aggregate_by_tag(self, metric: str, tag: str, start_s: float, end_s: float) -> list[TagAggregate]:
        """Aggregate a metric per value of a tag (``application``, ``feed``...) over ``[start_s, end_s)``."""
        ...

    def training_set(self, start_s: float, end_s: float, metrics: Sequence[str] | None = None) -> ReadingBatch:
        """Every raw reading in ``[start_s, end_s)``, ordered by time, for offline retraining."""
        ...

    def count(self) -> int:
        """Raw readings stored."""
        ...

    def apply_retention(
        self, now_s: float, raw_keep_s: float, rollup_step_s: float, rollup_keep_s: float
    ) -> RetentionResult:
        """Roll raw readings older than ``raw_keep_s`` into ``rollup_step_s`` buckets; drop old roll-ups."""
        ...

    def append_journal(self, entry: JournalRecord) -> None:
        """Append one journal entry (idempotent for the same command, phase and time)."""
        ...

    def append_journal_many(self, entries: Sequence[JournalRecord]) -> None:
        """Append many journal entries in one transaction (all or none)."""
        ...

    def journal(self, since_s: float = 0.0, limit: int = 1000) -> list[JournalEntry]:
        """Journal entries at or after ``since_s``, oldest first."""
        ...

    def save_model(
        self, name: str, version: str, blob: bytes, meta: Mapping[str, object], t_s: float | None = None
    ) -> None:
        """Store one model version (replaces the same name and version)."""
        ...

    def latest_model(self, name: str) -> ModelRecord | None:
        """The most recently saved version of a model, or ``None``."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
