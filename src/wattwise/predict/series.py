"""Input hygiene for forecasters: put a series on a regular grid and fill what may be filled.

Policy (documented, tested):

* times must be finite and strictly increasing, values finite or NaN (±inf is rejected);
* the series is resampled onto the grid ``t0 + k * step_s`` (nearest sample within half a step);
* missing samples (gaps, NaN runs) up to ``max_fill_steps`` long are filled by linear
  interpolation; longer runs are filled with the previous value and counted in
  :attr:`Grid.filled_long_frac` (models train only on targets that were observed);
* more than half of the grid missing, a history ending in a missing run longer than
  ``max_fill_steps``, or fewer than ``min_points`` observed samples raise ``PredictionError``.

>>> g = to_grid(Series(np.array([0.0, 60, 180]), np.array([1.0, 2.0, 4.0])), 60.0)
>>> g.value.tolist(), g.observed.tolist()
([1.0, 2.0, 3.0, 4.0], [True, True, False, True])
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from wattwise.errors import PredictionError
from wattwise.model.values import Quality, Reading
from wattwise.predict.base import BoolArray, FloatArray, Series

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grid:
    """A series on a regular grid.

    Attributes:
        t0_s: Time of the first grid point, seconds.
        step_s: Grid spacing, seconds.
        value: Values with every gap filled (never NaN).
        observed: Whether each grid value was measured (False: filled).
        filled_long_frac: Fraction of the grid filled from runs longer than ``max_fill_steps``.
    """

    t0_s: float
    step_s: float
    value: FloatArray
    observed: BoolArray
    filled_long_frac: float

    @property
    def t_s(self) -> FloatArray:
        """Grid times, seconds."""
        return self.t0_s + self.step_s * np.arange(self.value.shape[0], dtype=np.float64)


def check_series(series: Series) -> None:
    """Reject times that are not finite/increasing and values that are infinite.

    Raises:
        PredictionError: Naming the first problem found.
    """
    t, v = series.t_s, series.value
    if t.shape != v.shape or t.ndim != 1:
        raise PredictionError(f"t_s and value must be 1-D of equal length, got {t.shape} and {v.shape}")
    if not np.all(np.isfinite(t)):
        raise PredictionError("t_s contains NaN or inf")
    if t.shape[0] > 1 and not np.all(np.diff(t) > 0):
        raise PredictionError("t_s must be strictly increasing")
    if np.any(np.isinf(v)):
        raise PredictionError("value contains +/-inf")


def to_grid(series: Series, step_s: float, *, max_fill_steps: int = 12, min_points: int = 3) -> Grid:
    """Put ``series`` on a regular ``step_s`` grid following the module's policy.

    Args:
        series: The raw series.
        step_s: Grid spacing, seconds.
        max_fill_steps: Longest missing run filled by interpolation.
        min_points: Fewest observed samples accepted.

    Returns:
        The gridded series.

    Raises:
        PredictionError: Bad times, too few observations, mostly missing, or a stale end.
    """
    check_series(series)
    if step_s <= 0:
        raise PredictionError(f"step_s must be positive, got {step_s}")
    finite = np.isfinite(series.value)
    if int(finite.sum()) < min_points:
        raise PredictionError(f"too short: {int(finite.sum())} observed samples, need at least {min_points}")
    t0 = float(series.t_s[0])
    n = int(round((float(series.t_s[-1]) - t0) / step_s)) + 1
    idx = np.rint((series.t_s - t0) / step_s).astype(np.int64)
    close = np.abs(series.t_s - (t0 + idx * step_s)) <= step_s / 2
    value = np.full(n, np.nan)
    sel = close & finite
    value[idx[sel]] = series.value[sel]
    observed = np.isfinite(value)
    if observed.mean() < 0.5:
        raise PredictionError(f"{100 * (1 - observed.mean()):.0f} % of the grid is missing")
    tail_missing = n - 1 - int(np.flatnonzero(observed)[-1])
    if tail_missing > max_fill_steps:
        raise PredictionError(f"history ends with {tail_missing} missing steps (stale; max {max_fill_steps})")
    filled, long_frac = _fill(value, observed, max_fill_steps)
    if long_frac > 0:
        logger.warning("filled %.1f %% of the grid from long gaps with the previous value", 100 * long_frac)
    return Grid(t0_s=t0, step_s=float(step_s), value=filled, observed=observed, filled_long_frac=long_frac)


def _fill(value: FloatArray, observed: BoolArray, max_fill_steps: int) -> tuple[FloatArray, float]:
    """Linear interpolation over short runs, previous value over long ones."""
    out = value.copy()
    pos = np.flatnonzero(observed)
    out[: pos[0]] = value[pos[0]]  # leading gap: back-fill from the first observation
    interp = np.interp(np.arange(value.shape[0]), pos, value[pos])
    missing = ~observed
    run_id = np.cumsum(observed)
    long_count = 0
    for rid in np.unique(run_id[missing]):
        run = np.flatnonzero(missing & (run_id == rid))
        if run.shape[0] <= max_fill_steps or run[0] == 0:
            out[run] = interp[run]
        else:
            out[run] = out[run[0] - 1]
            long_count += run.shape[0]
    return out, long_count / value.shape[0]


def append_to_grid(grid: Grid, new: Series, *, max_fill_steps: int = 12) -> Grid:
    """Extend ``grid`` with samples newer than its end (older ones are ignored).

    Raises:
        PredictionError: When ``new`` has bad times or values, or leaves the end stale.
    """
    check_series(new)
    n_old = grid.value.shape[0]
    end_s = grid.t0_s + grid.step_s * (n_old - 1)
    keep = new.t_s > end_s + grid.step_s / 2
    if not np.any(keep):
        return grid
    t_new, v_new = new.t_s[keep], new.value[keep]
    idx = np.rint((t_new - grid.t0_s) / grid.step_s).astype(np.int64)
    value = np.full(int(idx[-1]) + 1, np.nan)
    value[:n_old] = np.where(grid.observed, grid.value, np.nan)
    ok = np.isfinite(v_new)
    value[idx[ok]] = v_new[ok]
    observed = np.isfinite(value)
    tail_missing = value.shape[0] - 1 - int(np.flatnonzero(observed)[-1])
    if tail_missing > max_fill_steps:
        raise PredictionError(f"update ends with {tail_missing} missing steps (stale; max {max_fill_steps})")
    filled, long_frac = _fill(value, observed, max_fill_steps)
    return Grid(grid.t0_s, grid.step_s, filled, observed, long_frac)


def from_readings(readings: Iterable[Reading], device_id: str, metric: str) -> Series:
    """The series of one device's metric from stored readings (sorted; BAD quality and duplicates dropped).

    >>> from wattwise.model.values import Quality
    >>> rs = [Reading("pdu6", "power_w", 2.0, 60.0), Reading("pdu6", "power_w", 1.0, 0.0),
    ...       Reading("pdu6", "power_w", 9.0, 30.0, Quality.BAD), Reading("pdu7", "power_w", 5.0, 0.0)]
    >>> from_readings(rs, "pdu6", "power_w").value.tolist()
    [1.0, 2.0]
    """
    pairs = sorted(
        (r.t_s, r.value)
        for r in readings
        if r.device_id == device_id and r.metric == metric and r.quality is not Quality.BAD
    )
    t_s = np.array([p[0] for p in pairs], dtype=np.float64)
    value = np.array([p[1] for p in pairs], dtype=np.float64)
    keep = np.concatenate([[True], np.diff(t_s) > 0]) if t_s.size else np.zeros(0, dtype=bool)
    return Series(t_s=t_s[keep], value=value[keep])
