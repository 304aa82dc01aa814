"""Event-level scoring of alarms against labelled anomaly segments or failure times.

* Instability (labelled segments): an event is detected when an alarm fires inside it;
  its delay is the number of samples from the segment start to the first alarm. Alarm
  runs (contiguous alarmed samples, merged across gaps of ``merge_gap`` samples) that touch
  no segment are false-alarm events. Point-wise precision/recall/F1 are reported too;
  point-adjusted F1 is deliberately not computed.
* Failure prediction (failure times with NAB windows): a failure is caught with lead ``L``
  when an alarm fires in ``[window_start, failure_t - L]``; alarm runs outside every window
  are false alarms.

>>> lab = np.array([0, 0, 1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
>>> al = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0], dtype=bool)
>>> s = segment_scores(al, lab, sample_s=60.0, merge_gap=0)
>>> s.n_events, s.detected, s.false_alarm_events, s.delays_samples
(1, 1, 1, (1,))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wattwise.predict.base import BoolArray, FloatArray


def runs(mask: BoolArray, merge_gap: int = 0) -> list[tuple[int, int]]:
    """Inclusive ``(start, end)`` index pairs of True runs, merging gaps up to ``merge_gap``."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > merge_gap + 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


@dataclass(frozen=True)
class SegmentScores:
    """Event and point scores of one alarm series against labelled segments."""

    n_events: int
    detected: int
    delays_samples: tuple[int, ...]
    false_alarm_events: int
    days: float
    point_precision: float
    point_recall: float
    point_f1: float

    @property
    def false_alarms_per_day(self) -> float:
        """False-alarm events per day of scored data."""
        return self.false_alarm_events / self.days if self.days > 0 else 0.0


def segment_scores(alarm: BoolArray, label: BoolArray, sample_s: float, merge_gap: int = 5) -> SegmentScores:
    """Score ``alarm`` against the labelled anomaly segments of ``label``."""
    segments = runs(label)
    delays = []
    for a, b in segments:
        hit = np.flatnonzero(alarm[a : b + 1])
        if hit.size:
            delays.append(int(hit[0]))
    false = sum(1 for a, b in runs(alarm, merge_gap) if not label[a : b + 1].any())
    tp = float(np.sum(alarm & label))
    prec = tp / max(float(alarm.sum()), 1.0)
    rec = tp / max(float(label.sum()), 1.0)
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return SegmentScores(
        n_events=len(segments),
        detected=len(delays),
        delays_samples=tuple(delays),
        false_alarm_events=false,
        days=alarm.shape[0] * sample_s / 86_400.0,
        point_precision=prec,
        point_recall=rec,
        point_f1=f1,
    )


@dataclass(frozen=True)
class LeadScores:
    """Failure-prediction scores of one device."""

    n_failures: int
    caught: int
    leads_s: tuple[float, ...]
    false_alarm_events: int
    days: float


def lead_scores(
    t_s: FloatArray,
    alarm: BoolArray,
    windows_s: list[tuple[float, float]],
    failures_s: list[float],
    min_lead_s: float,
    merge_gap: int = 5,
) -> LeadScores:
    """Score alarms for failures at ``failures_s`` with their windows ``windows_s``.

    A failure counts as caught when an alarm fires in ``[window_start, failure - min_lead_s]``;
    the reported lead is from the first such alarm. Alarm runs touching no window are false.
    """
    in_window = np.zeros(t_s.shape[0], dtype=bool)
    for a, b in windows_s:
        in_window |= (t_s >= a) & (t_s <= b)
    leads = []
    for f in failures_s:
        start = next((a for a, b in windows_s if a <= f <= b), f)
        ok = alarm & (t_s >= start) & (t_s <= f - min_lead_s)
        if ok.any():
            leads.append(float(f - t_s[np.flatnonzero(ok)[0]]))
    false = sum(1 for a, b in runs(alarm, merge_gap) if not in_window[a : b + 1].any())
    span_s = float(t_s[-1] - t_s[0]) if t_s.shape[0] > 1 else 0.0
    return LeadScores(len(failures_s), len(leads), tuple(leads), false, span_s / 86_400.0)
