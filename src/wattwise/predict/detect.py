"""Instability detectors for nodes and processors: robust z-score (baseline) and PCA residual.

Both learn "normal" from a training frame only and fix their alarm threshold there, as a
high quantile of the training scores times a margin; nothing from the scored range moves
the threshold. Scores are causal (each sample uses itself and earlier samples only) and
smoothed by a trailing mean to ignore one-sample blips. The failure probability is a
logistic of the score around the threshold (0.5 at the threshold).

>>> rng = np.random.default_rng(0)
>>> train = Frame(np.arange(500.0) * 60, rng.normal(0, 1, (500, 3)), ("a", "b", "c"))
>>> det = RobustZScoreDetector()
>>> det.fit(train)
>>> spike = np.zeros((10, 3)); spike[5:, 1] = 40.0
>>> out = det.score(Frame(np.arange(10.0) * 60, spike, ("a", "b", "c")))
>>> bool(out.alarm[:5].any()), bool(out.alarm[6:].all()), out.top_signals[-1]
(False, True, 'b')
"""

from __future__ import annotations

import numpy as np

from wattwise.errors import PredictionError
from wattwise.predict.base import FloatArray, Frame, InstabilityScore
from wattwise.predict.events import runs

_MAD_TO_SIGMA = 1.4826


def _check(frame: Frame, signals: tuple[str, ...] | None, min_rows: int) -> FloatArray:
    if signals is not None and frame.signals != signals:
        raise PredictionError(f"signals {frame.signals} differ from the fitted {signals}")
    if len(frame) < min_rows:
        raise PredictionError(f"too short: {len(frame)} samples, need at least {min_rows}")
    if np.any(np.isinf(frame.values)):
        raise PredictionError("values contain +/-inf")
    values = frame.values
    if np.all(np.isnan(values)):
        raise PredictionError("every value is NaN")
    return values


def _step_s(frame: Frame) -> float:
    return float(np.median(np.diff(frame.t_s))) if len(frame) > 1 else 0.0


def _ffill(values: FloatArray, fill: FloatArray) -> FloatArray:
    """Forward-fill NaN per column (causal); leading NaN take ``fill`` (the training median)."""
    out = values.copy()
    for j in range(out.shape[1]):
        col = out[:, j]
        bad = np.isnan(col)
        if bad.any():
            idx = np.where(~bad, np.arange(col.shape[0]), -1)
            idx = np.maximum.accumulate(idx)
            col[:] = np.where(idx >= 0, col[np.maximum(idx, 0)], fill[j])
    return out


def _trailing_mean(x: FloatArray, window: int) -> FloatArray:
    c = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(x.shape[0])
    lo = np.maximum(idx + 1 - window, 0)
    out: FloatArray = (c[idx + 1] - c[lo]) / (idx + 1 - lo)
    return out


class TrainingThreshold:
    """Alarm threshold fixed on training scores, and the logistic failure probability around it.

    The threshold is the lowest training-score quantile (scanning down from the top) whose
    alarm runs on the training range stay within ``fa_budget_per_day`` (training data is
    taken as normal), times ``margin``, and never below the ``quantile`` floor.
    """

    def __init__(self, quantile: float, margin: float, fa_budget_per_day: float, sample_s: float) -> None:
        self.quantile = quantile
        self.margin = margin
        self.fa_budget_per_day = fa_budget_per_day
        self.sample_s = sample_s
        self.value = float("nan")

    def fit(self, train_scores: FloatArray, sample_s: float) -> None:
        """Fix the threshold from training scores sampled every ``sample_s`` seconds."""
        self.sample_s = sample_s if sample_s > 0 else self.sample_s
        days = max(train_scores.shape[0] * self.sample_s / 86_400.0, 1e-9)
        chosen = float(np.max(train_scores))
        for q in np.linspace(1.0, self.quantile, 200):
            thr = float(np.quantile(train_scores, q))
            if len(runs(train_scores > thr, 5)) / days > self.fa_budget_per_day:
                break
            chosen = thr
        self.value = chosen * self.margin
        if not np.isfinite(self.value) or self.value <= 0:
            self.value = 1.0

    def prob(self, score: FloatArray) -> FloatArray:
        """Failure probability (0-1) of each score: 0.5 at the threshold."""
        z = np.clip((score - self.value) / (0.25 * self.value), -50.0, 50.0)
        out: FloatArray = 1.0 / (1.0 + np.exp(-z))
        return out


class RobustZScoreDetector:
    """Max robust z-score over signals (median/MAD learned on training data).

    Args:
        quantile: Lowest training-score quantile the threshold may take.
        margin: Multiplier on the chosen training quantile.
        fa_budget_per_day: Alarm runs per day tolerated on the training range.
        smooth_steps: Trailing-mean window of the score, samples.
        min_scale_frac: Floor of each signal's scale, as a fraction of its training range
            (constant training signals would otherwise make any change infinite).
        seed: Unused (deterministic); kept for the uniform contract.
    """

    def __init__(
        self,
        *,
        quantile: float = 0.99,
        margin: float = 1.0,
        fa_budget_per_day: float = 0.25,
        smooth_steps: int = 3,
        min_scale_frac: float = 0.05,
        seed: int = 0,
    ) -> None:
        self.quantile = quantile
        self.margin = margin
        self.fa_budget_per_day = fa_budget_per_day
        self.smooth_steps = smooth_steps
        self.min_scale_frac = min_scale_frac
        self.seed = seed
        self._median = np.zeros(0)
        self._scale = np.zeros(0)
        self._signals: tuple[str, ...] | None = None
        self._threshold = TrainingThreshold(quantile, margin, fa_budget_per_day, 60.0)

    def _z(self, values: FloatArray) -> FloatArray:
        out: FloatArray = np.abs(_ffill(values, self._median) - self._median) / self._scale
        return out

    def fit(self, train: Frame) -> None:
        """Learn per-signal median and scale, then the threshold, from ``train`` only."""
        values = _check(train, None, 10)
        self._median = np.nanmedian(values, axis=0)
        mad = _MAD_TO_SIGMA * np.nanmedian(np.abs(values - self._median), axis=0)
        span = np.nanmax(values, axis=0) - np.nanmin(values, axis=0)
        self._scale = np.maximum(mad, np.maximum(self.min_scale_frac * span, 1e-6))
        self._signals = train.signals
        z = self._z(values)
        self._threshold.fit(_trailing_mean(z.max(axis=1), self.smooth_steps), _step_s(train))

    def score(self, frame: Frame) -> InstabilityScore:
        """Causal score, alarms and failure probability for every sample."""
        if self._signals is None:
            raise PredictionError("detector is not fitted")
        z = self._z(_check(frame, self._signals, 1))
        score = _trailing_mean(z.max(axis=1), self.smooth_steps)
        top = tuple(frame.signals[int(j)] for j in np.argmax(z, axis=1))
        return InstabilityScore(
            t_s=frame.t_s,
            score=score,
            alarm=score > self._threshold.value,
            failure_prob_frac=self._threshold.prob(score),
            threshold=self._threshold.value,
            top_signals=top,
        )


class PcaInstabilityDetector:
    """Residual of a PCA model of normal behaviour (squared prediction error, per signal).

    Args:
        var_frac: Fraction of the (robustly standardised) training variance the principal
            subspace keeps.
        quantile: Lowest training-score quantile the threshold may take.
        margin: Multiplier on the chosen training quantile.
        fa_budget_per_day: Alarm runs per day tolerated on the training range.
        smooth_steps: Trailing-mean window of the score, samples.
        min_scale_frac: Floor of each signal's scale as a fraction of its training range.
        seed: Unused (SVD is deterministic); kept for the uniform contract.
    """

    def __init__(
        self,
        *,
        var_frac: float = 0.9,
        quantile: float = 0.99,
        margin: float = 1.0,
        fa_budget_per_day: float = 0.25,
        smooth_steps: int = 3,
        min_scale_frac: float = 0.05,
        seed: int = 0,
    ) -> None:
        self.var_frac = var_frac
        self.quantile = quantile
        self.margin = margin
        self.fa_budget_per_day = fa_budget_per_day
        self.smooth_steps = smooth_steps
        self.min_scale_frac = min_scale_frac
        self.seed = seed
        self._z = RobustZScoreDetector(min_scale_frac=min_scale_frac)
        self._basis = np.zeros((0, 0))
        self._signals: tuple[str, ...] | None = None
        self._threshold = TrainingThreshold(quantile, margin, fa_budget_per_day, 60.0)

    def _residual(self, values: FloatArray) -> FloatArray:
        x = (_ffill(values, self._z._median) - self._z._median) / self._z._scale
        out: FloatArray = x - (x @ self._basis) @ self._basis.T
        return out

    def fit(self, train: Frame) -> None:
        """Fit scaling and the principal subspace, then the threshold, on ``train`` only."""
        if len(train.signals) < 2:
            raise PredictionError("PCA residual needs at least 2 signals; use RobustZScoreDetector")
        self._z.fit(train)
        values = _check(train, None, 10)
        x = (_ffill(values, self._z._median) - self._z._median) / self._z._scale
        x = x - x.mean(axis=0)
        _, sing, vt = np.linalg.svd(x, full_matrices=False)
        var = sing**2 / max(float(np.sum(sing**2)), 1e-12)
        k = int(np.searchsorted(np.cumsum(var), self.var_frac) + 1)
        self._basis = vt[: min(k, vt.shape[0])].T
        self._signals = train.signals
        res = self._residual(values)
        self._threshold.fit(_trailing_mean(np.sqrt(np.mean(res**2, axis=1)), self.smooth_steps), _step_s(train))

    def score(self, frame: Frame) -> InstabilityScore:
        """Causal score, alarms and failure probability for every sample."""
        if self._signals is None:
            raise PredictionError("detector is not fitted")
        res = self._residual(_check(frame, self._signals, 1))
        score = _trailing_mean(np.sqrt(np.mean(res**2, axis=1)), self.smooth_steps)
        top = tuple(frame.signals[int(j)] for j in np.argmax(np.abs(res), axis=1))
        return InstabilityScore(
            t_s=frame.t_s,
            score=score,
            alarm=score > self._threshold.value,
            failure_prob_frac=self._threshold.prob(score),
            threshold=self._threshold.value,
            top_signals=top,
        )
