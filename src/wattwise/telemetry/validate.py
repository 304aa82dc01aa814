"""Validation before storage: every reading is accepted or rejected with a counted reason.

Rejected readings never reach the store or the models, and they are never dropped silently:
each is counted per reason and device (``RejectionStats``), and a device's first rejection
for a reason is logged, as is its recovery (transitions, not every bad reading).
Staleness (age of the last good reading per device) is data for the decision layer.

All checks run on NumPy columns, so a batch of 200 000 readings validates in well under a
second on one core.

>>> v = ReadingValidator({"ups-a"}, max_future_s=5.0)
>>> b = ReadingBatch.from_columns(["ups-a", "ups-a", "nope"], ["power_w"] * 3, [900.0, -1.0, 5.0], [10.0] * 3)
>>> r = v.validate(b, now_s=10.0)
>>> len(r.accepted), [str(RejectReason(x)) for x in r.reasons if x]
(1, ['out_of_range', 'unknown_device'])
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import numpy.typing as npt
import pandas as pd

from wattwise.model.site import Site
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.metrics import METRIC_NAMES, METRICS, MetricKind

logger = logging.getLogger(__name__)


class RejectReason(IntEnum):
    """Why a reading or payload was rejected (0 means accepted)."""

    OK = 0
    MALFORMED = 1
    UNKNOWN_METRIC = 2
    UNKNOWN_DEVICE = 3
    NOT_FINITE = 4
    OUT_OF_RANGE = 5
    FUTURE = 6
    TOO_OLD = 7
    DUPLICATE = 8
    COUNTER_BACKWARDS = 9

    def __str__(self) -> str:
        return self.name.lower()


@dataclass
class RejectionStats:
    """Counters of accepted and rejected readings (mutable, owned by one validator/pipeline).

    Attributes:
        accepted_total: Readings that passed validation.
        rejected: Count per ``(reason, device_id)``; payloads that named no device use ``""``.
    """

    accepted_total: int = 0
    rejected: Counter[tuple[RejectReason, str]] = field(default_factory=Counter)

    def by_reason(self) -> dict[str, int]:
        """Rejections per reason name."""
        out: Counter[str] = Counter()
        for (reason, _), n in self.rejected.items():
            out[str(reason)] += n
        return dict(out)

    @property
    def rejected_total(self) -> int:
        """All rejections."""
        return sum(self.rejected.values())


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The outcome of validating one batch.

    Attributes:
        accepted: The valid rows, in input order.
        reasons: One ``RejectReason`` code per input row (0 = accepted).
    """

    accepted: ReadingBatch
    reasons: npt.NDArray[np.int8]


def site_device_ids(site: Site) -> frozenset[str]:
    """Every id in a site model (feeds, UPS, PDUs, outlets, PSUs, servers, workloads, ...)."""
    found: set[str] = set()
    stack: list[object] = [site]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple | list):
            stack.extend(node)
            continue
        fields = getattr(type(node), "model_fields", None)
        if fields is None:
            continue
        ident = getattr(node, "id", None)
        if isinstance(ident, str):
            found.add(ident)
        stack.extend(getattr(node, name) for name in fields)
    return frozenset(found)


def is_known_device(device_id: str, known: frozenset[str]) -> bool:
    """A site id, or a part of one: ``<site id>/<part>`` (a sensor or circuit a driver reports).

    >>> is_known_device("bmc-1/CPU1Temp", frozenset({"bmc-1"})), is_known_device("bmc-9/x", frozenset({"bmc-1"}))
    (True, False)
    """
    if device_id in known:
        return True
    head, sep, part = device_id.rpartition("/")
    return bool(sep and part and head in known)


_LO = np.array([METRICS[m].min_value for m in METRIC_NAMES] + [np.nan])
_HI = np.array([METRICS[m].max_value for m in METRIC_NAMES] + [np.nan])
_IS_COUNTER = np.array([METRICS[m].kind is MetricKind.COUNTER for m in METRIC_NAMES] + [False])
_METRIC_CODE = {m: i for i, m in enumerate(METRIC_NAMES)}


class ReadingValidator:
    """Accepts or rejects readings; keeps rejection counters and per-device staleness.

    Args:
        known_device_ids: Ids from the site model; readings of other devices are rejected
            (``<id>/<part>``, a sensor or circuit of a known device, is accepted).
        max_future_s: Tolerated clock skew: readings newer than ``now_s + max_future_s`` are rejected.
        max_age_s: Readings older than ``now_s - max_age_s`` are rejected.
    """

    def __init__(self, known_device_ids: Iterable[str], max_future_s: float = 60.0, max_age_s: float = 7 * 86400.0):
        self.known_device_ids = frozenset(known_device_ids)
        self.max_future_s = max_future_s
        self.max_age_s = max_age_s
        self.stats = RejectionStats()
        self._last_good_t_s: dict[str, float] = {}
        # counters are also bumped from the event loop (payloads that never decoded, store
        # duplicates) and read by the exporter's HTTP thread, while a batch validates in a worker
        self._lock = threading.Lock()
        self._last_counter: dict[tuple[str, int], tuple[float, float]] = {}
        self._failing: dict[tuple[str, RejectReason], bool] = {}

    def validate(self, batch: ReadingBatch, now_s: float) -> ValidationResult:
        """Check every row of ``batch`` at clock time ``now_s``; count and log rejections."""
        n = len(batch)
        reasons = np.zeros(n, dtype=np.int8)
        if n == 0:
            return ValidationResult(batch, reasons)
        # hash each distinct name once (pandas factorize), then work on integer codes
        metric_codes, metric_names = pd.factorize(batch.metric)
        code = np.array([_METRIC_CODE.get(m, -1) for m in metric_names] + [-1], dtype=np.intp)[metric_codes]
        dev_codes, dev_names = pd.factorize(batch.device_id)
        known = self.known_device_ids
        dev_ok = np.array([is_known_device(d, known) for d in dev_names] + [False], dtype=bool)[dev_codes]
        value, t_s = batch.value, batch.t_s
        with np.errstate(invalid="ignore"):
            checks: tuple[tuple[RejectReason, npt.NDArray[np.bool_]], ...] = (
                (RejectReason.UNKNOWN_METRIC, code < 0),
                (RejectReason.UNKNOWN_DEVICE, ~dev_ok),
                (RejectReason.NOT_FINITE, ~(np.isfinite(value) & np.isfinite(t_s))),
                (RejectReason.OUT_OF_RANGE, ~((value >= _LO[code]) & (value <= _HI[code]))),
                (RejectReason.FUTURE, t_s > now_s + self.max_future_s),
                (RejectReason.TOO_OLD, t_s < now_s - self.max_age_s),
            )
        for reason, bad in checks:
            reasons[(reasons == 0) & bad] = reason
        self._mark_duplicates(batch, dev_codes, code, reasons)
        self._check_counters(batch, code, reasons)
        ok = reasons == 0
        accepted = batch.take(ok)
        self._account(batch, reasons, accepted)
        return ValidationResult(accepted, reasons)

    @staticmethod
    def _mark_duplicates(
        batch: ReadingBatch, dev_codes: npt.NDArray[np.intp], code: npt.NDArray[np.intp], reasons: npt.NDArray[np.int8]
    ) -> None:
        """Within the batch, a second reading of the same device, metric and time is a duplicate."""
        live = np.flatnonzero(reasons == 0)
        if live.size < 2:
            return
        dev_code = dev_codes[live]
        order = np.lexsort((live, batch.t_s[live], code[live], dev_code))
        d, c, t = dev_code[order], code[live][order], batch.t_s[live][order]
        same = (d[1:] == d[:-1]) & (c[1:] == c[:-1]) & (t[1:] == t[:-1])
        reasons[live[order[1:][same]]] = RejectReason.DUPLICATE

    def _check_counters(self, batch: ReadingBatch, code: npt.NDArray[np.intp], reasons: npt.NDArray[np.int8]) -> None:
        """A counter may never decrease over time (per device and metric, across batches)."""
        rows = np.flatnonzero((reasons == 0) & _IS_COUNTER[code])
        if rows.size == 0:
            return
        rows = rows[np.lexsort((batch.t_s[rows],))]
        for i in rows:  # counters are few (energy, uptime, errors); a loop over them is cheap
            key = (str(batch.device_id[i]), int(code[i]))
            t, v = float(batch.t_s[i]), float(batch.value[i])
            last = self._last_counter.get(key)
            if last is not None and ((t > last[0] and v < last[1]) or (t < last[0] and v > last[1])):
                reasons[i] = RejectReason.COUNTER_BACKWARDS
                continue
            if last is None or t > last[0]:
                self._last_counter[key] = (t, v)

    def _account(self, batch: ReadingBatch, reasons: npt.NDArray[np.int8], accepted: ReadingBatch) -> None:
        bad = np.flatnonzero(reasons)
        newly_bad: Counter[tuple[RejectReason, str]] = Counter(
            (RejectReason(int(reasons[i])), str(batch.device_id[i])) for i in bad
        )
        with self._lock:
            self.stats.accepted_total += len(accepted)
            self.stats.rejected.update(newly_bad)
            for reason, device in newly_bad:
                if not self._failing.get((device, reason)):
                    self._failing[(device, reason)] = True
                    logger.warning("device_id=%s readings rejected: %s", device, reason)
            if len(accepted):
                self._note_good(accepted)

    def _note_good(self, accepted: ReadingBatch) -> None:
        inverse, devices = pd.factorize(accepted.device_id)
        newest = np.full(len(devices), -np.inf)
        np.maximum.at(newest, inverse, accepted.t_s)
        for device, t in zip(devices, newest, strict=True):
            dev = str(device)
            if t > self._last_good_t_s.get(dev, -np.inf):
                self._last_good_t_s[dev] = float(t)
        if self._failing:
            good = set(map(str, devices))
            for key in [k for k, failing in self._failing.items() if failing and k[0] in good]:
                self._failing[key] = False
                logger.info("device_id=%s readings valid again after %s", key[0], key[1])

    def count_rejected(self, reason: RejectReason, device_id: str = "", n: int = 1) -> None:
        """Count rejections found outside ``validate`` (undecodable payloads, store duplicates)."""
        with self._lock:
            self.stats.rejected[(reason, device_id)] += n
            if not self._failing.get((device_id, reason)):
                self._failing[(device_id, reason)] = True
                logger.warning("device_id=%s payloads rejected: %s", device_id or "?", reason)

    def uncount_accepted(self, n: int) -> None:
        """Take back acceptances that the store then found to be duplicates."""
        with self._lock:
            self.stats.accepted_total -= n

    def snapshot(self) -> RejectionStats:
        """A consistent copy of the counters (for exporters and reports)."""
        with self._lock:
            return RejectionStats(self.stats.accepted_total, Counter(self.stats.rejected))

    def last_good_t_s(self) -> Mapping[str, float]:
        """Time of the last accepted reading per device."""
        with self._lock:
            return dict(self._last_good_t_s)

    def staleness_s(self, now_s: float) -> dict[str, float]:
        """Age of the last good reading per known device (``inf`` when never seen)."""
        last = self.last_good_t_s()
        return {d: now_s - last.get(d, -np.inf) for d in self.known_device_ids}
