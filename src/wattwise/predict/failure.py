"""Failure predictors: robust level/slope threshold (baseline) with a fixed, training-only threshold.

A device's signals are compared with their own training behaviour: the robust z-score of
the level and of the change over ``slope_steps`` samples (a falling temperature, a climbing
latency). The largest, smoothed over ``smooth_steps``, is the score; the threshold is fixed
on training data with a false-alarm budget (see ``TrainingThreshold``). The probability of
failure within the horizon is a logistic of the score around that threshold; it is a
ranking score mapped to [0, 1], not a calibrated frequency (too few failures exist to
calibrate it).

>>> rng = np.random.default_rng(1)
>>> t = np.arange(2000.0) * 300
>>> train = Frame(t, 70 + rng.normal(0, 1, 2000), ("temp_c",))
>>> p = ThresholdFailurePredictor()
>>> p.fit(train)
>>> drop = 70 - np.clip(np.arange(50.0) - 25, 0, None) * 2
>>> risk = p.predict(Frame(t[:50], drop, ("temp_c",)), horizon_s=3600.0)
>>> bool(risk.alarm[:20].any()), bool(risk.alarm[-5:].all()), risk.top_signals[0]
(False, True, 'temp_c:level')
"""

from __future__ import annotations

import numpy as np

from wattwise.errors import PredictionError
from wattwise.predict.base import FailureRisk, FloatArray, Frame
from wattwise.predict.detect import RobustZScoreDetector, TrainingThreshold, _ffill, _step_s, _trailing_mean


def _slopes(values: FloatArray, steps: int) -> FloatArray:
    """Change over ``steps`` samples (causal; zero where the history is shorter)."""
    out = np.zeros_like(values)
    out[steps:] = values[steps:] - values[:-steps]
    return out


class ThresholdFailurePredictor:
    """Robust z-score of level and slope against a training-only threshold.

    Args:
        slope_steps: Samples over which the slope is taken.
        smooth_steps: Trailing-mean window of the score, samples.
        fa_budget_per_day: Alarm runs per day tolerated on the training range.
        margin: Multiplier on the chosen training quantile.
        min_scale_frac: Floor of each scale as a fraction of the training range.
        seed: Unused (deterministic); kept for the uniform contract.
    """

    def __init__(
        self,
        *,
        slope_steps: int = 6,
        smooth_steps: int = 3,
        fa_budget_per_day: float = 0.0,
        margin: float = 1.0,
        min_scale_frac: float = 0.02,
        seed: int = 0,
    ) -> None:
        self.slope_steps = slope_steps
        self.smooth_steps = smooth_steps
        self.fa_budget_per_day = fa_budget_per_day
        self.margin = margin
        self.min_scale_frac = min_scale_frac
        self.seed = seed
        self._level = RobustZScoreDetector(min_scale_frac=min_scale_frac)
        self._slope = RobustZScoreDetector(min_scale_frac=min_scale_frac)
        self._threshold = TrainingThreshold(0.9, margin, fa_budget_per_day, 60.0)
        self._signals: tuple[str, ...] | None = None

    def _z(self, frame: Frame) -> FloatArray:
        values = _ffill(frame.values, self._level._median)
        z_level = np.abs(values - self._level._median) / self._level._scale
        slope = _slopes(values, self.slope_steps)
        z_slope = np.abs(slope - self._slope._median) / self._slope._scale
        out: FloatArray = np.concatenate([z_level, z_slope], axis=1)
        return out

    def fit(self, train: Frame) -> None:
        """Learn level and slope statistics and the threshold from ``train`` only.

        Raises:
            PredictionError: Too short (fewer than ``4 * slope_steps`` samples) or unusable.
        """
        if len(train) < 4 * self.slope_steps:
            raise PredictionError(f"too short: {len(train)} samples, need {4 * self.slope_steps}")
        self._level.fit(train)
        filled = _ffill(train.values, self._level._median)
        slope = _slopes(filled, self.slope_steps)
        self._slope.fit(Frame(train.t_s, slope, train.signals))
        self._signals = train.signals
        score = _trailing_mean(self._z(train).max(axis=1), self.smooth_steps)
        self._threshold.fit(score, _step_s(train))

    def predict(self, frame: Frame, horizon_s: float) -> FailureRisk:
        """Failure probability within ``horizon_s`` at every sample, with the top signals.

        Raises:
            PredictionError: Not fitted, or signals differ from the fitted ones.
        """
        if self._signals is None:
            raise PredictionError("predictor is not fitted")
        if frame.signals != self._signals:
            raise PredictionError(f"signals {frame.signals} differ from the fitted {self._signals}")
        if len(frame) == 0 or np.any(np.isinf(frame.values)):
            raise PredictionError("empty frame or +/-inf values")
        z = self._z(frame)
        score = _trailing_mean(z.max(axis=1), self.smooth_steps)
        names = [f"{s}:level" for s in frame.signals] + [f"{s}:slope" for s in frame.signals]
        order = np.argsort(-z[-1], kind="stable")
        return FailureRisk(
            t_s=frame.t_s,
            horizon_s=horizon_s,
            failure_prob_frac=self._threshold.prob(score),
            alarm=score > self._threshold.value,
            top_signals=tuple(names[int(j)] for j in order[:3]),
        )
