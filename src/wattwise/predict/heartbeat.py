"""Streaming heartbeat instability detector of one event processor (or node).

The primary signal is the time since the last heartbeat (``heartbeat_gap_s``). From a healthy
training frame of one node the detector learns that node's beat period (median interval
between the beats it can see in the sampled gap) and its normal gap (a high quantile of the
training gaps), and fixes a gap limit::

    gap_limit_s = quantile(training gaps, quantile) + tolerance_beats * period_s

so a perfectly regular node alarms at its first missed beat, and a jittery one only beyond
its own normal jitter. Optional auxiliary signals (consumer lag, CPU) are scored as robust
z-scores against their training median and scale, each normalised by its own limit
(``max(aux_z_limit, margin * max training z)``). The score is the largest of these ratios,
so the alarm threshold is 1 and the top signal names the ratio that raised it.

Bad input: ``+/-inf`` values, a missing signal, too few training samples or a training frame
with no visible heartbeat raise :class:`~wattwise.errors.PredictionError`. A missing gap
sample (NaN) counts as "no beat seen": the gap keeps growing from the last valid sample, so a
silent node is alarmed rather than forgotten. Missing auxiliary samples are carried forward
(leading ones take the training median). Negative gaps (clock skew) are read as 0.

>>> t = np.arange(600.0)
>>> train = Frame(t, np.zeros(600), ("heartbeat_gap_s",))
>>> det = HeartbeatInstabilityDetector(aux_signals=())
>>> det.fit(train)
>>> det.period_s, det.gap_limit_s
(1.0, 0.5)
>>> gap = np.array([0.0, 0.0, 1.0, 2.0, 0.0])
>>> det.score(Frame(600.0 + np.arange(5.0), gap, ("heartbeat_gap_s",))).alarm.tolist()
[False, False, True, True, False]
"""

from __future__ import annotations

import numpy as np

from wattwise.errors import PredictionError
from wattwise.predict.base import FloatArray, Frame, InstabilityScore

_MAD_TO_SIGMA = 1.4826


def _gap_filled(t_s: FloatArray, gap_s: FloatArray, lead_s: float) -> FloatArray:
    """Gaps with NaN replaced by the last valid gap plus the time elapsed since it (causal)."""
    out = np.maximum(gap_s, 0.0)
    valid = ~np.isnan(out)
    if valid.all():
        return out
    idx = np.maximum.accumulate(np.where(valid, np.arange(out.shape[0]), -1))
    seen = idx >= 0
    last = np.maximum(idx, 0)
    filled: FloatArray = np.where(seen, out[last] + (t_s - t_s[last]), lead_s)
    return filled


def _ffill(col: FloatArray, lead: float) -> FloatArray:
    """Forward-fill NaN (causal); leading NaN take ``lead``."""
    bad = np.isnan(col)
    if not bad.any():
        return col
    idx = np.maximum.accumulate(np.where(~bad, np.arange(col.shape[0]), -1))
    out: FloatArray = np.where(idx >= 0, col[np.maximum(idx, 0)], lead)
    return out


def beat_period_s(t_s: FloatArray, gap_s: FloatArray) -> float:
    """Median interval between the beats visible in a sampled gap series, seconds.

    A beat happened between two samples when the gap grew by less than the time between
    them; its time is the sample time minus the gap. The result is at least the median sample
    step (beats faster than the sampling cannot be told apart).

    Raises:
        PredictionError: Fewer than two beats are visible.
    """
    ok = ~np.isnan(gap_s)
    t, g = t_s[ok], np.maximum(gap_s[ok], 0.0)
    if t.shape[0] < 3:
        raise PredictionError("too short: fewer than 3 valid heartbeat gap samples")
    dt = np.diff(t)
    beat = g[1:] < g[:-1] + dt - 1e-9
    beat_t = np.unique(t[1:][beat] - g[1:][beat])
    if beat_t.shape[0] < 2:
        raise PredictionError("no heartbeat visible in the training frame (the gap never resets)")
    return float(max(np.median(np.diff(beat_t)), np.median(dt)))


class HeartbeatInstabilityDetector:
    """Per-node gap limit learned on healthy training data, plus robust z of lag/CPU.

    Args:
        gap_signal: Column holding the time since the last heartbeat, seconds.
        aux_signals: Further columns scored as robust z-scores (e.g. ``lag_s``, ``cpu_frac``).
        quantile: Training-gap quantile taken as the node's normal gap.
        tolerance_beats: Learned beat periods allowed beyond the normal gap before an alarm.
        aux_z_limit: Smallest robust z at which an auxiliary signal alarms.
        margin: Multiplier on the largest training z of an auxiliary signal (its limit is
            never below what training already showed).
        min_scale_frac: Floor of an auxiliary signal's scale, as a fraction of its training span.
        min_scale: Absolute floor of an auxiliary signal's scale (constant training signals).
        min_train_samples: Fewest training samples accepted.
        seed: Unused (deterministic); kept for the uniform contract.
    """

    def __init__(
        self,
        *,
        gap_signal: str = "heartbeat_gap_s",
        aux_signals: tuple[str, ...] = ("lag_s",),
        quantile: float = 0.999,
        tolerance_beats: float = 0.5,
        aux_z_limit: float = 8.0,
        margin: float = 1.5,
        min_scale_frac: float = 0.05,
        min_scale: float = 0.1,
        min_train_samples: int = 60,
        seed: int = 0,
    ) -> None:
        self.gap_signal = gap_signal
        self.aux_signals = aux_signals
        self.quantile = quantile
        self.tolerance_beats = tolerance_beats
        self.aux_z_limit = aux_z_limit
        self.margin = margin
        self.min_scale_frac = min_scale_frac
        self.min_scale = min_scale
        self.min_train_samples = min_train_samples
        self.seed = seed
        self.period_s = float("nan")
        self.gap_limit_s = float("nan")
        self._gap_median_s = 0.0
        self._median = np.zeros(0)
        self._scale = np.zeros(0)
        self._aux_limit = np.zeros(0)
        self._signals: tuple[str, ...] | None = None

    def _columns(self, frame: Frame) -> tuple[FloatArray, FloatArray]:
        """Validated (gap, aux) columns of ``frame``."""
        if self._signals is not None and frame.signals != self._signals:
            raise PredictionError(f"signals {frame.signals} differ from the fitted {self._signals}")
        missing = [s for s in (self.gap_signal, *self.aux_signals) if s not in frame.signals]
        if missing:
            raise PredictionError(f"signals {missing} missing from the frame's {frame.signals}")
        if np.any(np.isinf(frame.values)):
            raise PredictionError("values contain +/-inf")
        gap = frame.values[:, frame.signals.index(self.gap_signal)]
        aux = frame.values[:, [frame.signals.index(s) for s in self.aux_signals]]
        return gap, aux

    def _aux_z(self, aux: FloatArray) -> FloatArray:
        cols = [_ffill(aux[:, j], float(self._median[j])) for j in range(aux.shape[1])]
        filled = np.column_stack(cols) if cols else aux
        out: FloatArray = np.abs(filled - self._median) / self._scale
        return out

    def fit(self, train: Frame) -> None:
        """Learn the beat period, gap limit and auxiliary limits from ``train`` only.

        Raises:
            PredictionError: Too short, missing signals, inf values, every gap NaN, or no
                visible beat.
        """
        if len(train) < self.min_train_samples:
            raise PredictionError(f"too short: {len(train)} samples, need at least {self.min_train_samples}")
        self._signals = None
        gap, aux = self._columns(train)
        if np.all(np.isnan(gap)):
            raise PredictionError(f"every {self.gap_signal} value is NaN")
        period_s = beat_period_s(train.t_s, gap)
        valid_gap = np.maximum(gap[~np.isnan(gap)], 0.0)
        self._gap_median_s = float(np.median(valid_gap))
        self.period_s = period_s
        normal_s = float(np.quantile(valid_gap, self.quantile))
        self.gap_limit_s = max(normal_s + self.tolerance_beats * period_s, 1e-6)  # 0 would divide by zero
        self._fit_aux(aux)
        self._signals = train.signals

    def _fit_aux(self, aux: FloatArray) -> None:
        empty = np.isnan(aux).all(axis=0)
        if empty.any():
            raise PredictionError(f"every {self.aux_signals[int(np.argmax(empty))]} value is NaN")
        if aux.shape[1] == 0:
            self._median = self._scale = self._aux_limit = np.zeros(0)
            return
        self._median = np.nanmedian(aux, axis=0)
        mad = _MAD_TO_SIGMA * np.nanmedian(np.abs(aux - self._median), axis=0)
        span = np.nanmax(aux, axis=0) - np.nanmin(aux, axis=0)
        self._scale = np.maximum(mad, np.maximum(self.min_scale_frac * span, self.min_scale))
        self._aux_limit = np.maximum(self.aux_z_limit, self.margin * self._aux_z(aux).max(axis=0))

    def score(self, frame: Frame) -> InstabilityScore:
        """Causal score (largest ratio to its limit), alarms (score > 1) and failure probability.

        Raises:
            PredictionError: Not fitted, different signals, or inf values.
        """
        if self._signals is None:
            raise PredictionError("detector is not fitted")
        gap, aux = self._columns(frame)
        ratios = np.column_stack(
            [_gap_filled(frame.t_s, gap, self._gap_median_s) / self.gap_limit_s, self._aux_z(aux) / self._aux_limit]
        )
        score = ratios.max(axis=1)
        names = (self.gap_signal, *self.aux_signals)
        top = tuple(names[int(j)] for j in np.argmax(ratios, axis=1))
        z = np.clip((score - 1.0) / 0.25, -50.0, 50.0)
        return InstabilityScore(
            t_s=frame.t_s,
            score=score,
            alarm=score > 1.0,
            failure_prob_frac=1.0 / (1.0 + np.exp(-z)),
            threshold=1.0,
            top_signals=top,
        )
