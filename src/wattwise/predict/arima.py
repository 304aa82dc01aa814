"""ARIMA(p, 1, q) forecaster (statsmodels SARIMAX for the fit, a NumPy recursion for paths).

The coefficients are estimated once on the fit head (maximum likelihood, statsmodels). For
forecasts from many origins, the fitted model is run causally over the series once to get
its one-step innovations, then the ARMA recursion on the differences is rolled forward from
every origin at once (future innovations are zero). Convergence warnings of the optimiser
are logged, not raised: a poorly converged fit is still a valid, if weaker, model.

>>> t = np.arange(0.0, 6 * 86400.0, 600.0)
>>> y = 100.0 + np.cumsum(np.random.default_rng(0).normal(0, 1, t.shape[0]))
>>> f = ArimaForecaster(max_horizon_s=3600.0)
>>> f.fit(Series(t, y))
>>> fc = f.predict(3600.0, 600.0)
>>> bool(np.all(np.isfinite(fc.point)))
True
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from statsmodels.tsa.statespace.sarimax import SARIMAX

from wattwise.errors import PredictionError
from wattwise.predict.base import FloatArray, Forecast, ForecastPaths, Series, TrainingRange
from wattwise.predict.engine import ForecastEngine, IntArray
from wattwise.predict.series import Grid

logger = logging.getLogger(__name__)


class _ArimaPaths:
    """Path model for ARIMA(p, 1, q) without constant."""

    def __init__(self, p: int, q: int, max_fit_points: int) -> None:
        self.p = p
        self.q = q
        self.max_fit_points = max_fit_points
        self.ar = np.zeros(p)
        self.ma = np.zeros(q)
        self._params: FloatArray = np.zeros(0)

    def _model(self, y: FloatArray) -> SARIMAX:
        return SARIMAX(y, order=(self.p, 1, self.q), trend="n")

    def fit_grid(self, grid: Grid, end_idx: int, max_steps: int) -> None:
        y = grid.value[max(0, end_idx - self.max_fit_points) : end_idx]
        if float(np.ptp(y)) == 0.0:
            raise PredictionError("constant history: ARIMA is undefined (use SeasonalNaiveForecaster)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = self._model(y).fit(disp=False)
        for w in caught:
            logger.info("ARIMA fit: %s", w.message)
        self._params = np.asarray(res.params, dtype=np.float64)
        self.ar = np.asarray(res.arparams, dtype=np.float64) if self.p else np.zeros(0)
        self.ma = np.asarray(res.maparams, dtype=np.float64) if self.q else np.zeros(0)

    def _innovations(self, y: FloatArray) -> FloatArray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = self._model(y).filter(self._params)
        out: FloatArray = np.nan_to_num(np.asarray(res.resid, dtype=np.float64))
        return out

    def paths(self, grid: Grid, origin_idx: IntArray, n_steps: int) -> FloatArray:
        y = grid.value
        eps = self._innovations(y)
        d = np.concatenate([[0.0], np.diff(y)])
        lag_d = np.stack([_at(d, origin_idx - k) for k in range(self.p)], axis=1) if self.p else None
        lag_e = np.stack([_at(eps, origin_idx - k) for k in range(self.q)], axis=1) if self.q else None
        level = y[origin_idx].copy()
        out = np.empty((origin_idx.shape[0], n_steps))
        for h in range(n_steps):
            step = np.zeros(origin_idx.shape[0])
            if lag_d is not None:
                step += lag_d @ self.ar
            if lag_e is not None:
                step += lag_e @ self.ma
                lag_e = np.concatenate([np.zeros((lag_e.shape[0], 1)), lag_e[:, :-1]], axis=1)
            if lag_d is not None:
                lag_d = np.concatenate([step[:, None], lag_d[:, :-1]], axis=1)
            level = level + step
            out[:, h] = level
        return out


def _at(v: FloatArray, idx: IntArray) -> FloatArray:
    out: FloatArray = np.where(idx >= 0, v[np.maximum(idx, 0)], 0.0)
    return out


class ArimaForecaster:
    """ARIMA(p, 1, q) with split-conformal intervals.

    Args:
        p: Autoregressive order on the differences.
        q: Moving-average order.
        level: Interval coverage.
        max_horizon_s: Longest horizon calibrated.
        cal_frac: Fraction of the history kept for interval calibration.
        step_s: Grid step; ``None`` infers it from the history.
        max_fill_steps: Longest gap filled by interpolation.
        max_fit_points: Fit on at most this many latest points of the head (cost bound).
        seed: Unused (the likelihood fit is deterministic); kept for the uniform contract.
    """

    def __init__(
        self,
        p: int = 2,
        q: int = 1,
        *,
        level: float = 0.95,
        max_horizon_s: float = 86_400.0,
        cal_frac: float = 0.25,
        step_s: float | None = None,
        max_fill_steps: int = 12,
        max_fit_points: int = 2000,
        seed: int = 0,
    ) -> None:
        self.p = p
        self.q = q
        self.level = level
        self.max_horizon_s = max_horizon_s
        self.cal_frac = cal_frac
        self.step_s = step_s
        self.max_fill_steps = max_fill_steps
        self.max_fit_points = max_fit_points
        self.seed = seed
        self._engine = ForecastEngine(
            _ArimaPaths(p, q, max_fit_points),
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
        """Estimate the coefficients on the head, calibrate intervals on the tail.

        Raises:
            PredictionError: Unusable or constant history.
        """
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
