"""Conformal calibration of forecast intervals: split-conformal offsets, and online tracking.

:class:`SplitConformal` gives one pair of offsets per lead time.

The calibrator sees the signed residuals ``actual - point`` of forecasts made on a
calibration range the model was *not* fitted on, and takes, per lead, the lower and upper
empirical quantiles at ``(1 - level) / 2`` and ``(1 + level) / 2`` with the finite-sample
correction of split conformal prediction. Offsets are made non-decreasing in lead time
(uncertainty does not shrink with lead) and always bracket zero, so the interval contains
the point forecast.

>>> cal = SplitConformal(level=0.8)
>>> res = np.tile(np.linspace(-1.0, 1.0, 101)[:, None], (1, 2))
>>> cal.fit(res)
>>> [round(x, 2) for x in cal.upper_offset.tolist()]
[0.82, 0.82]

:func:`track_coverage` then adapts those bands online: a series' level and noise drift after
calibration (a new workload mix, a season), so a fixed band over- or under-covers. Each lead
keeps a scale on its split-conformal offsets and moves it after every forecast whose target
has been *observed by the origin being forecast*: up by ``eta`` (in log) × (1 - alpha) on a
miss, down by ``eta`` × alpha on a hit, which holds the long-run miss rate at ``alpha``
(quantile tracking, Angelopoulos, Candès and Tibshirani, "Conformal PID control", 2023).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wattwise.errors import PredictionError
from wattwise.predict.base import FloatArray, ForecastPaths, Series
from wattwise.predict.series import to_grid


class SplitConformal:
    """Per-lead split-conformal interval offsets.

    Args:
        level: Nominal coverage of the central interval (0-1 exclusive).
        min_samples: Fewest calibration residuals accepted per lead.
    """

    def __init__(self, level: float = 0.95, min_samples: int = 20) -> None:
        if not 0.0 < level < 1.0:
            raise PredictionError(f"level must be in (0, 1), got {level}")
        self.level = level
        self.min_samples = min_samples
        self.lower_offset: FloatArray = np.zeros(0)
        self.upper_offset: FloatArray = np.zeros(0)

    def fit(self, residuals: FloatArray) -> None:
        """Calibrate from ``(n_origins, n_leads)`` residuals; NaN entries are ignored.

        Raises:
            PredictionError: Fewer than ``min_samples`` residuals for some lead.
        """
        res = np.asarray(residuals, dtype=np.float64)
        if res.ndim != 2 or res.shape[1] == 0:
            raise PredictionError(f"residuals must be 2-D (origins, leads), got shape {res.shape}")
        counts = np.sum(np.isfinite(res), axis=0)
        if int(counts.min()) < self.min_samples:
            raise PredictionError(
                f"calibration too short: {int(counts.min())} residuals at the longest lead, need {self.min_samples}"
            )
        alpha = 1.0 - self.level
        lo = np.empty(res.shape[1])
        hi = np.empty(res.shape[1])
        for j in range(res.shape[1]):
            col = np.sort(res[np.isfinite(res[:, j]), j])
            lo[j], hi[j] = _conformal_pair(col, alpha)
        self.lower_offset = np.minimum.accumulate(np.minimum(lo, 0.0))
        self.upper_offset = np.maximum.accumulate(np.maximum(hi, 0.0))

    @property
    def n_leads(self) -> int:
        """Number of leads calibrated (0 before ``fit``)."""
        return int(self.upper_offset.shape[0])

    def bands(self, point: FloatArray, lead_idx: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Lower and upper bounds around ``point`` for 0-based lead indices ``lead_idx``.

        Raises:
            PredictionError: Before ``fit`` or for a lead beyond the calibrated ones.
        """
        idx = np.asarray(lead_idx, dtype=np.int64)
        if self.n_leads == 0:
            raise PredictionError("interval calibrator is not fitted")
        if idx.size and int(idx.max()) >= self.n_leads:
            raise PredictionError(f"lead {int(idx.max()) + 1} steps is beyond the calibrated {self.n_leads}")
        return point + self.lower_offset[idx], point + self.upper_offset[idx]


def _conformal_pair(sorted_res: FloatArray, alpha: float) -> tuple[float, float]:
    """Finite-sample corrected (alpha/2, 1-alpha/2) order statistics of sorted residuals."""
    n = sorted_res.shape[0]
    k_hi = int(np.ceil((n + 1) * (1.0 - alpha / 2.0)))
    k_lo = int(np.floor((n + 1) * (alpha / 2.0)))
    hi = sorted_res[min(k_hi, n) - 1]
    lo = sorted_res[max(k_lo, 1) - 1]
    return float(lo), float(hi)


def track_coverage(paths: ForecastPaths, series: Series, eta: float = 0.02) -> ForecastPaths:
    """``paths`` with every lead's band scaled online to hold its nominal coverage.

    Origins are processed in time order. The band of origin ``i`` at lead ``L`` is the original
    band's offsets times ``exp(log_scale)``, where ``log_scale`` has been moved by every earlier
    forecast at that lead whose target time is at or before origin ``i`` (so only values the
    forecaster could have seen at origin ``i`` are used): ``+eta * (1 - alpha)`` on a miss,
    ``-eta * alpha`` on a hit. Targets missing from ``series`` move nothing. Point forecasts are
    unchanged.

    Args:
        paths: Forecasts with split-conformal bands, origins in time order.
        series: The measured series (its values after an origin are used only once matured).
        eta: Step of the log scale (a fixed setting, not fitted).

    Raises:
        PredictionError: ``eta`` not positive, or origins out of time order.

    >>> t = np.arange(200.0) * 60.0
    >>> y = Series(t, np.where(t < 6000.0, 1.0, 1.0) + np.sin(t / 500.0) * np.where(t < 6000, 0.1, 1.0))
    >>> pt = np.ones((199, 1))
    >>> p = ForecastPaths(t[:-1], np.array([60.0]), pt, pt - 0.1, pt + 0.1, 0.9)
    >>> q = track_coverage(p, y, eta=0.2)
    >>> bool((q.upper - q.point)[-1, 0] > (p.upper - p.point)[-1, 0])  # widened after the noise grew
    True
    """
    if not eta > 0:
        raise PredictionError(f"eta must be positive, got {eta}")
    origin = np.asarray(paths.origin_t_s, dtype=np.float64)
    if origin.size > 1 and bool(np.any(np.diff(origin) < 0)):
        raise PredictionError("origins must be in time order")
    n_orig, n_lead = paths.point.shape
    if n_orig == 0 or n_lead == 0:
        return paths
    alpha = 1.0 - paths.level
    step_s = float(paths.lead_s[0])
    grid = to_grid(series, step_s, max_fill_steps=len(series), min_points=1)
    target_t = origin[:, None] + paths.lead_s[None, :]
    idx = np.rint((target_t - grid.t0_s) / step_s).astype(np.int64)
    inside = (idx >= 0) & (idx < grid.value.shape[0])
    safe = np.clip(idx, 0, grid.value.shape[0] - 1)
    actual = np.where(inside & grid.observed[safe], grid.value[safe], np.nan)
    # matured[i, j]: how many origins' targets at lead j are known at origin i
    matured = np.stack([np.searchsorted(target_t[:, j], origin, side="right") for j in range(n_lead)], axis=1)
    lo_off = paths.lower - paths.point
    hi_off = paths.upper - paths.point
    step = np.zeros((n_orig + 1, n_lead))  # cumulative log-scale moves of origins 0..k-1
    lower = np.empty_like(paths.lower)
    upper = np.empty_like(paths.upper)
    cols = np.arange(n_lead)
    for i in range(n_orig):
        scale = np.exp(step[matured[i], cols])
        lower[i] = paths.point[i] + lo_off[i] * scale
        upper[i] = paths.point[i] + hi_off[i] * scale
        y = actual[i]
        miss = (y < lower[i]) | (y > upper[i])
        move = np.where(np.isnan(y), 0.0, np.where(miss, eta * (1.0 - alpha), -eta * alpha))
        step[i + 1] = step[i] + move
    return ForecastPaths(
        origin_t_s=paths.origin_t_s,
        lead_s=paths.lead_s,
        point=paths.point,
        lower=lower,
        upper=upper,
        level=paths.level,
    )
