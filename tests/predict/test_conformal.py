"""Split-conformal offsets and their online tracking (``track_coverage``)."""

from __future__ import annotations

import numpy as np
import pytest

from wattwise.errors import PredictionError
from wattwise.predict.base import ForecastPaths, Series
from wattwise.predict.conformal import SplitConformal, track_coverage

STEP_S = 60.0


def _paths(noise_sd: float, band: float, n: int = 4000, seed: int = 3) -> tuple[ForecastPaths, Series]:
    """Forecast 1 and 2 steps ahead of a white-noise series around 10 with a fixed ±band."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + 2) * STEP_S
    y = 10.0 + rng.normal(0.0, noise_sd, n + 2)
    point = np.full((n, 2), 10.0)
    paths = ForecastPaths(t[:n], np.array([STEP_S, 2 * STEP_S]), point, point - band, point + band, 0.9)
    return paths, Series(t, y)


def _coverage(paths: ForecastPaths, series: Series) -> np.ndarray:
    y = np.stack([series.value[1 : len(paths.origin_t_s) + 1], series.value[2 : len(paths.origin_t_s) + 2]], axis=1)
    return np.mean((y >= paths.lower) & (y <= paths.upper), axis=0)


@pytest.mark.parametrize("band", [0.5, 5.0])  # far too narrow, far too wide for sd 1
def test_tracking_brings_coverage_to_the_nominal_level(band: float) -> None:
    paths, series = _paths(noise_sd=1.0, band=band)
    before = _coverage(paths, series)
    after = _coverage(track_coverage(paths, series, eta=0.05), series)
    assert np.all(np.abs(before - 0.9) > 0.08)
    assert np.all(np.abs(after - 0.9) < 0.02)


def test_tracking_uses_only_targets_measured_by_each_origin() -> None:
    paths, series = _paths(noise_sd=1.0, band=0.5, n=500)
    tracked = track_coverage(paths, series, eta=0.05)
    # changing values after origin k must not change any band at or before origin k
    k = 300
    late = Series(series.t_s, np.where(series.t_s > paths.origin_t_s[k], series.value * 50.0, series.value))
    again = track_coverage(paths, late, eta=0.05)
    np.testing.assert_array_equal(again.upper[: k + 1], tracked.upper[: k + 1])
    np.testing.assert_array_equal(again.lower[: k + 1], tracked.lower[: k + 1])
    assert not np.array_equal(again.upper[k + 3 :], tracked.upper[k + 3 :])
    # the first origin has nothing measured yet: its band is the split-conformal one
    np.testing.assert_array_equal(tracked.upper[0], paths.upper[0])


def test_points_are_unchanged_and_gaps_move_nothing() -> None:
    paths, series = _paths(noise_sd=1.0, band=0.5, n=300)
    holes = Series(series.t_s, np.where(np.arange(len(series)) % 2 == 0, np.nan, series.value))
    tracked = track_coverage(paths, holes, eta=0.05)
    np.testing.assert_array_equal(tracked.point, paths.point)
    assert np.all(np.isfinite(tracked.upper)) and np.all(tracked.upper >= tracked.point)
    assert np.all(tracked.lower <= tracked.point)


def test_bad_settings_are_refused() -> None:
    paths, series = _paths(noise_sd=1.0, band=1.0, n=50)
    with pytest.raises(PredictionError, match="eta"):
        track_coverage(paths, series, eta=0.0)
    backwards = ForecastPaths(
        paths.origin_t_s[::-1].copy(), paths.lead_s, paths.point, paths.lower, paths.upper, paths.level
    )
    with pytest.raises(PredictionError, match="time order"):
        track_coverage(backwards, series)


def test_split_conformal_refuses_short_calibration() -> None:
    with pytest.raises(PredictionError, match="too short"):
        SplitConformal(level=0.9, min_samples=20).fit(np.zeros((5, 2)))
