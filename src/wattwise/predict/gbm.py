"""Gradient-boosting (LightGBM) forecaster: one direct model over all leads.

The model predicts the scaled change ``(y[i+h] - y[i]) / scale`` from lag, seasonal and
calendar features (:mod:`wattwise.predict.features`) with an L1 loss (robust, and close to
what MAPE rewards). Leads are a feature, trained on a geometric set of leads up to the
longest horizon. Intervals come from the shared split-conformal engine.

Fallback (documented): a constant history, or one too short for at least
``min_train_rows`` training rows, is forecast by persistence (the last value), with a
warning; ``fallback_reason`` says why. ``predict`` never returns NaN.
"""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np

from wattwise.predict.base import FloatArray, Forecast, ForecastPaths, Series, TrainingRange
from wattwise.predict.engine import ForecastEngine, IntArray
from wattwise.predict.features import build_features
from wattwise.predict.series import Grid

logger = logging.getLogger(__name__)


class _LightGbmPaths:
    """Path model around a LightGBM booster."""

    def __init__(
        self, params: dict[str, float | int | str | bool], rounds: int, max_rows: int, min_rows: int, smooth: bool
    ) -> None:
        self.params = params
        self.smooth = smooth
        self.rounds = rounds
        self.max_rows = max_rows
        self.min_rows = min_rows
        self.booster: lgb.Booster | None = None
        self.scale = 1.0
        self.day_steps = 1
        self.week_steps = 1
        self.fallback_reason = ""

    def _rows(self, grid: Grid, end_idx: int, max_steps: int) -> tuple[IntArray, IntArray]:
        leads = np.unique(np.rint(np.geomspace(1, max_steps, 20)).astype(np.int64))
        first = min(48, end_idx // 4)
        origins = np.arange(first, end_idx - 1, dtype=np.int64)
        stride = max(1, int(np.ceil(origins.shape[0] * leads.shape[0] / self.max_rows)))
        origins = origins[::stride]
        o = np.repeat(origins, leads.shape[0])
        h = np.tile(leads, origins.shape[0])
        ok = o + h < end_idx
        ok[ok] &= grid.observed[(o + h)[ok]]
        return o[ok], h[ok]

    def fit_grid(self, grid: Grid, end_idx: int, max_steps: int) -> None:
        self.day_steps = max(1, int(round(86_400.0 / grid.step_s)))
        self.week_steps = 7 * self.day_steps
        head = grid.value[:end_idx]
        self.booster, self.fallback_reason = None, ""
        if float(np.ptp(head)) == 0.0:
            self.fallback_reason = "constant history: persistence"
        else:
            o, h = self._rows(grid, end_idx, max_steps)
            if o.shape[0] < self.min_rows:
                self.fallback_reason = f"only {o.shape[0]} training rows (< {self.min_rows}): persistence"
        if self.fallback_reason:
            logger.warning("LightGbmForecaster falls back: %s", self.fallback_reason)
            return
        self.scale = float(np.median(np.abs(head))) or float(np.std(head)) or 1.0
        v = grid.value / self.scale
        x = build_features(v, grid.t_s, o, h, self.day_steps, self.week_steps, self.smooth)
        y = v[o + h] - v[o]
        data = lgb.Dataset(x, label=y, params={"verbose": -1}, free_raw_data=True)
        self.booster = lgb.train(self.params, data, num_boost_round=self.rounds)

    def paths(self, grid: Grid, origin_idx: IntArray, n_steps: int) -> FloatArray:
        last = grid.value[origin_idx][:, None]
        if self.booster is None:
            out: FloatArray = np.repeat(last, n_steps, axis=1)
            return out
        o = np.repeat(origin_idx, n_steps)
        h = np.tile(np.arange(1, n_steps + 1, dtype=np.int64), origin_idx.shape[0])
        x = build_features(grid.value / self.scale, grid.t_s, o, h, self.day_steps, self.week_steps, self.smooth)
        delta = np.asarray(self.booster.predict(x), dtype=np.float64).reshape(origin_idx.shape[0], n_steps)
        point: FloatArray = last + delta * self.scale
        return point


class LightGbmForecaster:
    """LightGBM direct multi-horizon forecaster with split-conformal intervals.

    Args:
        level: Interval coverage.
        max_horizon_s: Longest horizon (trained and calibrated up to it).
        cal_frac: Fraction of the history kept for interval calibration.
        step_s: Grid step; ``None`` infers it from the history.
        max_fill_steps: Longest gap filled by interpolation.
        n_estimators: Boosting rounds.
        learning_rate: Shrinkage.
        num_leaves: Leaves per tree.
        max_rows: Cap on training rows (origins are thinned evenly).
        min_train_rows: Fewer rows than this falls back to persistence.
        num_threads: LightGBM threads (fixed, for reproducibility).
        smooth_features: Add noise-averaged level and seasonal features.
        seed: Seed of every LightGBM random choice.
    """

    def __init__(
        self,
        *,
        level: float = 0.95,
        max_horizon_s: float = 86_400.0,
        cal_frac: float = 0.25,
        step_s: float | None = None,
        max_fill_steps: int = 12,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        max_rows: int = 150_000,
        min_train_rows: int = 200,
        num_threads: int = 2,
        smooth_features: bool = False,
        seed: int = 0,
    ) -> None:
        self.level = level
        self.max_horizon_s = max_horizon_s
        self.cal_frac = cal_frac
        self.step_s = step_s
        self.max_fill_steps = max_fill_steps
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_rows = max_rows
        self.min_train_rows = min_train_rows
        self.num_threads = num_threads
        self.smooth_features = smooth_features
        self.seed = seed
        params: dict[str, float | int | str | bool] = {
            "objective": "l1",
            "learning_rate": learning_rate,
            "num_leaves": num_leaves,
            "min_data_in_leaf": 50,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": num_threads,
            "verbose": -1,
        }
        self._paths = _LightGbmPaths(params, n_estimators, max_rows, min_train_rows, smooth_features)
        self._engine = ForecastEngine(
            self._paths,
            level=level,
            max_horizon_s=max_horizon_s,
            cal_frac=cal_frac,
            step_s=step_s,
            max_fill_steps=max_fill_steps,
        )

    @property
    def training_range(self) -> TrainingRange:
        """The range of the history given to ``fit``."""
        return self._engine.training_range

    @property
    def fallback_reason(self) -> str:
        """Why the model fell back to persistence at fit time ("" when it did not)."""
        return self._paths.fallback_reason

    def fit(self, history: Series) -> None:
        """Train on the head of the history, calibrate intervals on its tail."""
        self._engine.fit(history)

    def update(self, new: Series) -> None:
        """Append newer observations."""
        self._engine.update(new)

    def predict(self, horizon_s: float, step_s: float) -> Forecast:
        """Forecast ahead of the last observation."""
        return self._engine.predict(horizon_s, step_s)

    def predict_paths(self, series: Series, origins_t_s: FloatArray, horizon_s: float) -> ForecastPaths:
        """Forecast from many origins of ``series``."""
        return self._engine.predict_paths(series, origins_t_s, horizon_s)
