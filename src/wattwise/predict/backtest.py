"""Rolling-origin evaluation on held-out time ranges (pure; the bench script does the I/O).

The split is by time: a model is fitted on ``[start, test_start)`` only and every scored
target lies in ``[test_start, end]``. :func:`score_paths` refuses to score a target that
lies inside the model's training range, so a leak fails loudly instead of flattering a
model.

>>> s = Series(np.arange(10.0) * 60.0, np.arange(10.0) + 1.0)
>>> split = holdout_split(s, test_frac=0.3)
>>> bool(split.train.t_s[-1] < split.test_start_s)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wattwise.errors import PredictionError
from wattwise.predict.base import FloatArray, ForecastPaths, Series, TrainingRange
from wattwise.predict.series import to_grid


@dataclass(frozen=True)
class HoldoutSplit:
    """A time split: fit on ``train``, score targets in ``[test_start_s, test_end_s]``."""

    train: Series
    test_start_s: float
    test_end_s: float

    def origins_t_s(self, series: Series, stride: int = 1) -> FloatArray:
        """Origins whose first target is in the test range (the last training sample onward)."""
        idx = int(np.searchsorted(series.t_s, self.test_start_s)) - 1
        out: FloatArray = series.t_s[max(idx, 0) : -1 : stride]
        return out


def holdout_split(series: Series, test_frac: float) -> HoldoutSplit:
    """The last ``test_frac`` of the samples are the test range.

    Raises:
        PredictionError: ``test_frac`` outside (0, 1) or a series too short to split.
    """
    if not 0.0 < test_frac < 1.0:
        raise PredictionError(f"test_frac must be in (0, 1), got {test_frac}")
    n = len(series)
    cut = int(n * (1.0 - test_frac))
    if cut < 1 or cut >= n:
        raise PredictionError(f"series of {n} samples is too short to split")
    start_s = float(series.t_s[cut])
    return HoldoutSplit(series.slice_s(-np.inf, start_s), start_s, float(series.t_s[-1]))


@dataclass(frozen=True)
class PathScore:
    """Scores of forecasts at one lead over the test range.

    Attributes:
        lead_s: Lead time scored, seconds.
        n: Number of scored targets.
        mape_pct: Mean absolute percentage error, percent.
        coverage_frac: Fraction of targets inside the interval.
        mean_width: Mean interval width, in the series' unit.
        target_t_s: The scored target times (for plots and audits).
    """

    lead_s: float
    n: int
    mape_pct: float
    coverage_frac: float
    mean_width: float
    target_t_s: FloatArray


def score_paths(
    series: Series, paths: ForecastPaths, lead_s: float, split: HoldoutSplit, trained: TrainingRange
) -> PathScore:
    """Score the column of ``paths`` at ``lead_s`` against ``series`` on the test range only.

    The series is put on the forecast grid (step = the first lead); only grid points that
    hold a measured sample are scored (filled gaps are not).

    Raises:
        PredictionError: The model's training range reaches into the test range, a
            target falls before the test range, or the lead is not in ``paths``.
    """
    if trained.end_s >= split.test_start_s:
        raise PredictionError(f"model trained up to {trained.end_s} s, test starts at {split.test_start_s} s")
    hit = np.flatnonzero(np.isclose(paths.lead_s, lead_s))
    if hit.size == 0:
        raise PredictionError(f"lead {lead_s} s not among the forecast leads")
    j = int(hit[0])
    step_s = float(paths.lead_s[0]) if paths.lead_s.shape[0] else series.step_s
    grid = to_grid(series, step_s, max_fill_steps=len(series), min_points=1)
    target = paths.origin_t_s + lead_s
    idx = np.rint((target - grid.t0_s) / step_s).astype(np.int64)
    ok = (idx >= 0) & (idx < grid.value.shape[0]) & (target <= split.test_end_s)
    ok[ok] &= grid.observed[idx[ok]]
    if np.any(target[ok] < split.test_start_s):
        raise PredictionError("a scored target lies before the test range")
    y = grid.value[idx[ok]]
    point, lo, hi = paths.point[ok, j], paths.lower[ok, j], paths.upper[ok, j]
    if y.size == 0:
        raise PredictionError(f"no target in the test range at lead {lead_s} s")
    return PathScore(
        lead_s=lead_s,
        n=int(y.size),
        mape_pct=float(np.mean(np.abs(y - point) / np.maximum(np.abs(y), 1e-12)) * 100.0),
        coverage_frac=float(np.mean((y >= lo) & (y <= hi))),
        mean_width=float(np.mean(hi - lo)),
        target_t_s=target[ok],
    )
