"""Bad input → a clear PredictionError or the documented fill/fallback, never a crash or NaN."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from tests.predict.conftest import STEP_S, synthetic_series

from wattwise.errors import PredictionError
from wattwise.predict.base import Series
from wattwise.predict.gbm import LightGbmForecaster
from wattwise.predict.naive import SeasonalNaiveForecaster
from wattwise.predict.series import append_to_grid, to_grid

H_S = 3 * 3600.0


def test_short_gap_is_interpolated_and_marked() -> None:
    s = synthetic_series(days=1)
    v = s.value.copy()
    v[10:13] = np.nan
    g = to_grid(Series(s.t_s, v), STEP_S)
    assert not g.observed[10:13].any()
    np.testing.assert_allclose(g.value[10:13], np.interp([10, 11, 12], [9, 13], [v[9], v[13]]))
    assert g.filled_long_frac == 0.0


def test_missing_timestamps_are_a_gap_too() -> None:
    s = synthetic_series(days=1)
    keep = np.ones(len(s), dtype=bool)
    keep[20:25] = False
    g = to_grid(Series(s.t_s[keep], s.value[keep]), STEP_S)
    assert g.value.shape[0] == len(s)
    assert not g.observed[20:25].any()
    assert np.all(np.isfinite(g.value))


def test_long_nan_run_is_filled_forward_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    s = synthetic_series(days=2)
    v = s.value.copy()
    v[50:80] = np.nan
    with caplog.at_level(logging.WARNING):
        g = to_grid(Series(s.t_s, v), STEP_S, max_fill_steps=12)
    assert np.all(g.value[50:80] == v[49])
    assert g.filled_long_frac == pytest.approx(30 / len(s))
    assert "long gaps" in caplog.text


def test_forecaster_on_long_nan_run_gives_finite_forecast() -> None:
    s = synthetic_series()
    v = s.value.copy()
    v[100:160] = np.nan
    f = LightGbmForecaster(max_horizon_s=H_S, n_estimators=20, max_rows=5000, num_threads=1)
    f.fit(Series(s.t_s, v))
    fc = f.predict(H_S, STEP_S)
    assert np.all(np.isfinite(fc.point)) and np.all(np.isfinite(fc.upper))


@pytest.mark.parametrize(
    ("t_s", "value", "match"),
    [
        (np.arange(5.0), np.array([1.0, np.inf, 1, 1, 1]), "inf"),
        (np.array([0.0, 2, 1, 3, 4]), np.ones(5), "increasing"),
        (np.array([0.0, np.nan, 2, 3, 4]), np.ones(5), "NaN or inf"),
        (np.arange(2.0), np.ones(2), "too short"),
        (np.arange(10.0), np.array([1.0, 2, 3] + [np.nan] * 7), "missing"),
        (np.arange(30.0), np.array([1.0] * 15 + [np.nan] * 15), "stale"),
    ],
)
def test_bad_series_raise_prediction_error(t_s: np.ndarray, value: np.ndarray, match: str) -> None:
    with pytest.raises(PredictionError, match=match):
        to_grid(Series(t_s, value), 1.0)


def test_too_short_history_raises_clearly() -> None:
    s = synthetic_series(days=0.5)
    with pytest.raises(PredictionError, match="too short"):
        SeasonalNaiveForecaster(None, max_horizon_s=86_400.0).fit(s)


def test_single_sample_history_raises() -> None:
    with pytest.raises(PredictionError, match="too short"):
        SeasonalNaiveForecaster(None).fit(Series(np.array([0.0]), np.array([1.0])))


def test_constant_series_falls_back_to_persistence_without_nan() -> None:
    s = synthetic_series()
    const = Series(s.t_s, np.full(len(s), 42.0))
    f = LightGbmForecaster(max_horizon_s=H_S)
    f.fit(const)
    assert "constant" in f.fallback_reason
    fc = f.predict(H_S, STEP_S)
    np.testing.assert_array_equal(fc.point, 42.0)
    np.testing.assert_array_equal(fc.lower, 42.0)
    np.testing.assert_array_equal(fc.upper, 42.0)


def test_step_not_a_multiple_and_horizon_beyond_calibration_raise() -> None:
    f = SeasonalNaiveForecaster(None, max_horizon_s=H_S)
    f.fit(synthetic_series())
    with pytest.raises(PredictionError, match="multiple"):
        f.predict(H_S, STEP_S * 1.5)
    with pytest.raises(PredictionError, match="beyond"):
        f.predict(2 * H_S, STEP_S)


def test_predict_before_fit_raises() -> None:
    with pytest.raises(PredictionError, match="not fitted"):
        SeasonalNaiveForecaster(None).predict(3600.0, 600.0)


def test_update_with_stale_gap_raises_and_older_samples_are_ignored() -> None:
    s = synthetic_series(days=1)
    g = to_grid(s, STEP_S)
    assert append_to_grid(g, s.slice_s(s.t_s[0], s.t_s[10])) is g
    late = Series(np.array([s.t_s[-1] + 20 * STEP_S]), np.array([np.nan]))
    with pytest.raises(PredictionError, match="stale"):
        append_to_grid(g, late)
