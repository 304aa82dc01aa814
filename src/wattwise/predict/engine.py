"""The shared machinery behind every grid forecaster: gridding, calibration, prediction.

A forecasting technique only has to implement :class:`PathModel`: fit on the first part of
a grid, and produce point paths from many origins at once. :class:`ForecastEngine` does
the rest the same way for every technique (composition, not inheritance):

1. put the history on a regular grid (:mod:`wattwise.predict.series` policy);
2. fit the technique on the first ``1 - cal_frac`` of it;
3. forecast every calibration origin in the remaining tail and fit a
   :class:`~wattwise.predict.conformal.SplitConformal` on the residuals (the technique was
   not fitted on these targets, so the intervals are honest);
4. answer ``predict``/``predict_paths`` with point paths plus calibrated bands.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import numpy.typing as npt

from wattwise.errors import PredictionError
from wattwise.predict.base import FloatArray, Forecast, ForecastPaths, Series, TrainingRange
from wattwise.predict.conformal import SplitConformal
from wattwise.predict.series import Grid, append_to_grid, to_grid

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]


class PathModel(Protocol):
    """A forecasting technique on a regular grid."""

    def fit_grid(self, grid: Grid, end_idx: int, max_steps: int) -> None:
        """Fit on ``grid`` values before index ``end_idx`` for leads up to ``max_steps``."""
        ...

    def paths(self, grid: Grid, origin_idx: IntArray, n_steps: int) -> FloatArray:
        """``(len(origin_idx), n_steps)`` point forecasts; row i uses only values up to origin i."""
        ...


class ForecastEngine:
    """Gridding, split-conformal calibration and prediction around a :class:`PathModel`.

    Args:
        model: The technique.
        level: Interval coverage (e.g. 0.95).
        max_horizon_s: Longest horizon that will be asked for (calibrated up to it).
        cal_frac: Fraction of the history at its end kept for calibration.
        step_s: Grid spacing; ``None`` uses the history's median spacing.
        max_fill_steps: Longest gap filled by interpolation.
        max_cal_origins: Cap on calibration origins (evenly spaced) to bound the cost.
    """

    def __init__(
        self,
        model: PathModel,
        *,
        level: float,
        max_horizon_s: float,
        cal_frac: float,
        step_s: float | None,
        max_fill_steps: int,
        max_cal_origins: int = 800,
    ) -> None:
        self.model = model
        self.level = level
        self.max_horizon_s = max_horizon_s
        self.cal_frac = cal_frac
        self.step_s = step_s
        self.max_fill_steps = max_fill_steps
        self.max_cal_origins = max_cal_origins
        self.calibrator = SplitConformal(level=level)
        self._grid: Grid | None = None
        self._range = TrainingRange(float("nan"), float("nan"))

    @property
    def training_range(self) -> TrainingRange:
        """Range of the history given to ``fit`` (NaN before)."""
        return self._range

    @property
    def grid(self) -> Grid:
        """The history on its grid (after ``fit``/``update``)."""
        if self._grid is None:
            raise PredictionError("forecaster is not fitted")
        return self._grid

    def max_steps(self, step_s: float) -> int:
        """Number of grid steps in ``max_horizon_s``."""
        return max(1, int(round(self.max_horizon_s / step_s)))

    def fit(self, history: Series) -> None:
        """Grid, fit the technique on the head, calibrate on the tail.

        Raises:
            PredictionError: Input unusable or too short to fit and calibrate.
        """
        step_s = self.step_s if self.step_s is not None else history.step_s
        if step_s <= 0:
            raise PredictionError(f"too short: {len(history)} samples, cannot infer a step")
        grid = to_grid(history, step_s, max_fill_steps=self.max_fill_steps)
        n = grid.value.shape[0]
        h = self.max_steps(step_s)
        end_idx = int(n * (1.0 - self.cal_frac))
        min_cal = self.calibrator.min_samples
        if n - end_idx < h + min_cal or end_idx < 2:
            raise PredictionError(
                f"too short: {n} grid steps; need more than {h + min_cal} after a {1 - self.cal_frac:.0%} fit head"
            )
        self.model.fit_grid(grid, end_idx, h)
        origins = np.arange(end_idx - 1, n - 1, dtype=np.int64)
        if origins.shape[0] > self.max_cal_origins:
            origins = origins[np.linspace(0, origins.shape[0] - 1, self.max_cal_origins).astype(np.int64)]
        point = self.model.paths(grid, origins, h)
        target_idx = origins[:, None] + np.arange(1, h + 1)[None, :]
        inside = target_idx < n
        safe = np.minimum(target_idx, n - 1)
        actual = np.where(inside & grid.observed[safe], grid.value[safe], np.nan)
        self.calibrator.fit(actual - point)
        self._grid = grid
        self._range = TrainingRange(float(history.t_s[0]), float(history.t_s[-1]))
        logger.debug("fitted %s on %d steps, calibrated on %d origins", type(self.model).__name__, n, len(origins))

    def update(self, new: Series) -> None:
        """Append newer observations (no refit)."""
        self._grid = append_to_grid(self.grid, new, max_fill_steps=self.max_fill_steps)

    def _leads(self, horizon_s: float, step_s: float) -> tuple[int, IntArray]:
        grid_step = self.grid.step_s
        stride = step_s / grid_step
        if step_s <= 0 or horizon_s <= 0 or abs(stride - round(stride)) > 1e-6:
            raise PredictionError(f"step_s={step_s} must be a positive multiple of the grid step {grid_step}")
        n_steps = int(round(horizon_s / grid_step))
        if n_steps > self.calibrator.n_leads:
            raise PredictionError(f"horizon {horizon_s} s is beyond the calibrated {self.max_horizon_s} s")
        cols = np.arange(int(round(stride)) - 1, n_steps, int(round(stride)), dtype=np.int64)
        if cols.shape[0] == 0:
            raise PredictionError(f"horizon {horizon_s} s is shorter than step {step_s} s")
        return n_steps, cols

    def predict(self, horizon_s: float, step_s: float) -> Forecast:
        """Forecast from the last grid point."""
        grid = self.grid
        n_steps, cols = self._leads(horizon_s, step_s)
        last = np.array([grid.value.shape[0] - 1], dtype=np.int64)
        point = self.model.paths(grid, last, n_steps)[0, cols]
        lower, upper = self.calibrator.bands(point, cols)
        t_s = grid.t_s[-1] + grid.step_s * (cols + 1)
        return Forecast(t_s=t_s, point=point, lower=lower, upper=upper, level=self.level)

    def predict_paths(self, series: Series, origins_t_s: FloatArray, horizon_s: float) -> ForecastPaths:
        """Forecast from each origin of ``series`` at the grid step.

        Raises:
            PredictionError: Origins off the series' range, or horizon beyond calibration.
        """
        step_s = self.grid.step_s
        n_steps, cols = self._leads(horizon_s, step_s)
        grid = to_grid(series, step_s, max_fill_steps=self.max_fill_steps)
        idx = np.rint((np.asarray(origins_t_s, dtype=np.float64) - grid.t0_s) / step_s).astype(np.int64)
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= grid.value.shape[0]):
            raise PredictionError("origins outside the series")
        point = self.model.paths(grid, idx, n_steps)[:, cols]
        lower, upper = self.calibrator.bands(point, np.broadcast_to(cols, point.shape))
        return ForecastPaths(
            origin_t_s=np.asarray(grid.t0_s + step_s * idx, dtype=np.float64),
            lead_s=np.asarray(step_s * (cols + 1.0), dtype=np.float64),
            point=point,
            lower=lower,
            upper=upper,
            level=self.level,
        )
