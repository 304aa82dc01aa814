"""Holt-Winters (additive, damped trend) forecaster; EWMA is the special case without trend/season.

Smoothing constants are chosen on the fit head by one-step squared error over a small grid
(no look at the calibration tail or any test range).

>>> t = np.arange(0.0, 10 * 86400.0, 3600.0)
>>> f = HoltWintersForecaster(season_s=86400.0, max_horizon_s=6 * 3600.0)
>>> f.fit(Series(t, 5.0 + np.sin(2 * np.pi * t / 86400.0)))
>>> fc = f.predict(horizon_s=6 * 3600.0, step_s=3600.0)
>>> bool(np.max(np.abs(fc.point - (5.0 + np.sin(2 * np.pi * fc.t_s / 86400.0)))) < 0.1)
True
"""

from __future__ import annotations

import itertools

import numpy as np

from wattwise.errors import PredictionError
from wattwise.predict.base import FloatArray, Forecast, ForecastPaths, Series, TrainingRange
from wattwise.predict.engine import ForecastEngine, IntArray
from wattwise.predict.series import Grid

_ALPHAS = (0.1, 0.3, 0.5, 0.8)
_BETAS = (0.0, 0.05)
_GAMMAS = (0.05, 0.2, 0.5)


def _filter(
    y: FloatArray, m: int, alpha: float, beta: float, gamma: float, phi: float
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """Run the recursions; return level, trend and season per index, and one-step SSE."""
    n = y.shape[0]
    lev = np.empty(n)
    trend = np.empty(n)
    season = np.zeros(n)
    has_season = m > 1 and n >= 2 * m
    level0 = float(np.mean(y[:m])) if has_season else float(y[0])
    if has_season:
        season[:m] = y[:m] - level0
    ys = y.tolist()
    ss = season.tolist()
    lv, tr, sse = level0, 0.0, 0.0
    for t in range(n):
        s_prev = ss[t - m] if has_season and t >= m else (ss[t] if has_season else 0.0)
        err = ys[t] - (lv + phi * tr + s_prev)
        sse += err * err
        new_lv = alpha * (ys[t] - s_prev) + (1 - alpha) * (lv + phi * tr)
        tr = beta * (new_lv - lv) + (1 - beta) * phi * tr
        lv = new_lv
        if has_season and t >= m:
            ss[t] = gamma * (ys[t] - lv) + (1 - gamma) * s_prev
        lev[t], trend[t] = lv, tr
    return lev, trend, np.asarray(ss) if has_season else season, sse


class _HoltWintersPaths:
    """Path model for additive Holt-Winters with a damped trend."""

    def __init__(self, season_s: float | None, damping: float) -> None:
        self.season_s = season_s
        self.damping = damping
        self.season_steps = 1
        self.params = (0.5, 0.0, 0.0)

    def fit_grid(self, grid: Grid, end_idx: int, max_steps: int) -> None:
        if self.season_s is not None:
            steps = self.season_s / grid.step_s
            if steps < 1 or abs(steps - round(steps)) > 1e-6:
                raise PredictionError(f"season {self.season_s} s is not a whole number of {grid.step_s} s steps")
            self.season_steps = int(round(steps))
        y = grid.value[:end_idx]
        gammas = _GAMMAS if self.season_steps > 1 and y.shape[0] >= 2 * self.season_steps else (0.0,)
        best = (np.inf, self.params)
        for alpha, beta, gamma in itertools.product(_ALPHAS, _BETAS, gammas):
            sse = _filter(y, self.season_steps, alpha, beta, gamma, self.damping)[3]
            if sse < best[0]:
                best = (sse, (alpha, beta, gamma))
        self.params = best[1]

    def paths(self, grid: Grid, origin_idx: IntArray, n_steps: int) -> FloatArray:
        m = self.season_steps
        lev, trend, season, _ = _filter(grid.value, m, *self.params, self.damping)
        h = np.arange(1, n_steps + 1, dtype=np.int64)
        damp = np.cumsum(self.damping ** h.astype(np.float64))
        point = lev[origin_idx][:, None] + trend[origin_idx][:, None] * damp[None, :]
        if m > 1 and grid.value.shape[0] >= 2 * m:
            src = origin_idx[:, None] + h[None, :] - m * ((h[None, :] + m - 1) // m)
            point = point + np.where(src >= 0, season[np.maximum(src, 0)], 0.0)
        out: FloatArray = point
        return out


class HoltWintersForecaster:
    """Additive Holt-Winters with damped trend and split-conformal intervals.

    Args:
        season_s: Season length in seconds; ``None`` for no season (Holt/EWMA).
        damping: Trend damping factor per step (0-1; 1 is an undamped trend).
        level: Interval coverage.
        max_horizon_s: Longest horizon calibrated.
        cal_frac: Fraction of the history kept for interval calibration.
        step_s: Grid step; ``None`` infers it from the history.
        max_fill_steps: Longest gap filled by interpolation.
        seed: Unused (deterministic); kept for the uniform contract.
    """

    def __init__(
        self,
        season_s: float | None = 86_400.0,
        *,
        damping: float = 0.98,
        level: float = 0.95,
        max_horizon_s: float = 86_400.0,
        cal_frac: float = 0.25,
        step_s: float | None = None,
        max_fill_steps: int = 12,
        seed: int = 0,
    ) -> None:
        self.season_s = season_s
        self.damping = damping
        self.level = level
        self.max_horizon_s = max_horizon_s
        self.cal_frac = cal_frac
        self.step_s = step_s
        self.max_fill_steps = max_fill_steps
        self.seed = seed
        self._engine = ForecastEngine(
            _HoltWintersPaths(season_s, damping),
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
        """Choose smoothing constants on the head, calibrate intervals on the tail."""
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
