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

import lightgbm as lgb
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


def trend_features(frame: Frame, lags: tuple[int, ...] = (10, 30, 60)) -> FloatArray:
    """Per signal: the value and its change over each lag (causal; NaN forward-filled).

    Columns are ordered signal-major: ``s0, s0 - s0[-lag0], ..., s1, ...``.
    """
    values = _ffill(frame.values, np.zeros(frame.values.shape[1]))
    cols: list[FloatArray] = []
    for j in range(values.shape[1]):
        cols.append(values[:, j])
        for lag in lags:
            cols.append(_slopes(values[:, j : j + 1], lag)[:, 0])
    return np.column_stack(cols)


class LightGbmFailurePredictor:
    """Supervised failure predictor: LightGBM on level and trend features of a device fleet.

    Trained with :meth:`fit_fleet` on labelled histories of many devices (a sample is positive
    when a failure follows within ``horizon_s``); ``predict`` gives the probability of failure
    within that horizon. ``fit`` (one unlabelled device) is refused: there is nothing to learn
    a failure from.

    Args:
        horizon_s: Failure horizon the labels and probabilities refer to, seconds.
        alarm_prob_frac: Probability above which an alarm is raised (fixed, not tuned).
        smooth_steps: The alarm needs the trailing mean of the probability over this many
            samples above ``alarm_prob_frac`` (one noisy sample does not page anyone).
        n_estimators: Boosting rounds.
        num_threads: LightGBM threads.
        seed: Seed of every LightGBM random choice.
    """

    def __init__(
        self,
        *,
        horizon_s: float = 6 * 3600.0,
        alarm_prob_frac: float = 0.5,
        smooth_steps: int = 5,
        n_estimators: int = 200,
        num_threads: int = 2,
        seed: int = 0,
    ) -> None:
        self.horizon_s = horizon_s
        self.alarm_prob_frac = alarm_prob_frac
        self.smooth_steps = smooth_steps
        self.n_estimators = n_estimators
        self.num_threads = num_threads
        self.seed = seed
        self._booster: lgb.Booster | None = None
        self._signals: tuple[str, ...] | None = None

    def fit(self, train: Frame) -> None:
        """Refused: a supervised predictor needs labelled failures (use :meth:`fit_fleet`).

        Raises:
            PredictionError: Always.
        """
        raise PredictionError("LightGbmFailurePredictor needs labelled failures: call fit_fleet(frames, failures)")

    def fit_fleet(self, frames: list[Frame], failures_t_s: list[float | None]) -> None:
        """Fit on device histories; ``failures_t_s[i]`` is device i's failure time or ``None``.

        Samples at or after a device's failure are dropped (a dead unit is not "about to fail").

        Raises:
            PredictionError: Mismatched inputs, differing signals, or no positive sample.
        """
        if len(frames) != len(failures_t_s) or not frames:
            raise PredictionError("need one failure time (or None) per frame, and at least one frame")
        signals = frames[0].signals
        xs, ys = [], []
        for frame, fail in zip(frames, failures_t_s, strict=True):
            if frame.signals != signals:
                raise PredictionError(f"signals {frame.signals} differ from {signals}")
            keep = frame.t_s < fail if fail is not None else np.ones(len(frame), dtype=bool)
            xs.append(trend_features(frame)[keep])
            label = (fail - frame.t_s[keep] <= self.horizon_s) if fail is not None else np.zeros(int(keep.sum()))
            ys.append(np.asarray(label, dtype=np.float64))
        y = np.concatenate(ys)
        if y.sum() == 0:
            raise PredictionError("no sample precedes a failure: nothing to learn")
        params = {
            "objective": "binary",
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": 50,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbose": -1,
        }
        data = lgb.Dataset(np.concatenate(xs), label=y, params={"verbose": -1})
        self._booster = lgb.train(params, data, num_boost_round=self.n_estimators)
        self._signals = signals

    def predict(self, frame: Frame, horizon_s: float) -> FailureRisk:
        """Probability of failure within the trained horizon at every sample.

        Raises:
            PredictionError: Not fitted, another horizon, or signals differ from training.
        """
        if self._booster is None or self._signals is None:
            raise PredictionError("predictor is not fitted")
        if abs(horizon_s - self.horizon_s) > 1e-9:
            raise PredictionError(f"trained for a {self.horizon_s} s horizon, asked for {horizon_s} s")
        if frame.signals != self._signals or len(frame) == 0 or np.any(np.isinf(frame.values)):
            raise PredictionError("empty frame, +/-inf values, or signals differ from training")
        x = trend_features(frame)
        prob = np.asarray(self._booster.predict(x), dtype=np.float64)
        contrib = np.asarray(self._booster.predict(x[-1:], pred_contrib=True))[0, :-1]
        per_signal = np.abs(contrib).reshape(len(frame.signals), -1).sum(axis=1)
        order = np.argsort(-per_signal, kind="stable")
        return FailureRisk(
            t_s=frame.t_s,
            horizon_s=horizon_s,
            failure_prob_frac=prob,
            alarm=_trailing_mean(prob, self.smooth_steps) > self.alarm_prob_frac,
            top_signals=tuple(frame.signals[int(j)] for j in order[:3]),
        )
