"""Seasonal naive forecaster: the value one season ago (persistence when the season is one step).

>>> t = np.arange(0.0, 96 * 3600.0, 3600.0)
>>> f = SeasonalNaiveForecaster(season_s=86400.0, max_horizon_s=6 * 3600.0, cal_frac=0.5)
>>> f.fit(Series(t, 10.0 + np.sin(2 * np.pi * t / 86400.0)))
>>> fc = f.predict(horizon_s=3 * 3600.0, step_s=3600.0)
>>> bool(np.all(fc.lower <= fc.point) and np.all(fc.point <= fc.upper))
True
"""

from __future__ import annotations

import numpy as np

from wattwise.errors import PredictionError
from wattwise.predict.base import FloatArray, Forecast, ForecastPaths, Series, TrainingRange
from wattwise.predict.engine import ForecastEngine, IntArray
from wattwise.predict.series import Grid


class _SeasonalNaivePaths:
    """Path model: y(i + h) = y(i + h - k m), k = ceil(h / m); persistence where no season exists."""

    def __init__(self, season_s: float | None) -> None:
        self.season_s = season_s
        self.season_steps = 1

    def fit_grid(self, grid: Grid, end_idx: int, max_steps: int) -> None:
        if self.season_s is None:
            self.season_steps = 1
            return
        steps = self.season_s / grid.step_s
        if steps < 1 or abs(steps - round(steps)) > 1e-6:
            raise PredictionError(f"season {self.season_s} s is not a whole number of {grid.step_s} s steps")
        self.season_steps = int(round(steps))

    def paths(self, grid: Grid, origin_idx: IntArray, n_steps: int) -> FloatArray:
        m = self.season_steps
        h = np.arange(1, n_steps + 1, dtype=np.int64)
        src = origin_idx[:, None] + h[None, :] - m * ((h[None, :] + m - 1) // m)
        src = np.where(src < 0, origin_idx[:, None], src)  # history shorter than a season: persistence
        out: FloatArray = grid.value[src]
        return out


class SeasonalNaiveForecaster:
    """Seasonal naive baseline with split-conformal intervals.

    Args:
        season_s: Season length in seconds (86 400: same time yesterday; 604 800: last
            week); ``None`` for persistence (the last value).
        level: Interval coverage.
        max_horizon_s: Longest horizon calibrated.
        cal_frac: Fraction of the history kept for interval calibration.
        step_s: Grid step; ``None`` infers it from the history.
        max_fill_steps: Longest gap filled by interpolation.
        seed: Unused (the model is deterministic); kept for the uniform contract.
    """

    def __init__(
        self,
        season_s: float | None = None,
        *,
        level: float = 0.95,
        max_horizon_s: float = 86_400.0,
        cal_frac: float = 0.25,
        step_s: float | None = None,
        max_fill_steps: int = 12,
        seed: int = 0,
    ) -> None:
        self.season_s = season_s
        self.level = level
        self.max_horizon_s = max_horizon_s
        self.cal_frac = cal_frac
        self.step_s = step_s
        self.max_fill_steps = max_fill_steps
        self.seed = seed
        self._engine = ForecastEngine(
            _SeasonalNaivePaths(season_s),
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

    def fit(self, history: Series) -> None:
        """Calibrate the intervals on the history's tail."""
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
