"""One conformance suite for every Forecaster (STYLE.md rule 15)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from tests.predict.conftest import DAY_S, STEP_S, synthetic_series

from wattwise.predict.arima import ArimaForecaster
from wattwise.predict.base import Forecaster, Series
from wattwise.predict.gbm import LightGbmForecaster
from wattwise.predict.holt_winters import HoltWintersForecaster
from wattwise.predict.naive import SeasonalNaiveForecaster

H_S = 6 * 3600.0

FACTORIES: dict[str, Callable[[int], Forecaster]] = {
    "persistence": lambda seed: SeasonalNaiveForecaster(None, max_horizon_s=H_S, seed=seed),
    "seasonal_naive_day": lambda seed: SeasonalNaiveForecaster(DAY_S, max_horizon_s=H_S, seed=seed),
    "holt_winters": lambda seed: HoltWintersForecaster(DAY_S, max_horizon_s=H_S, seed=seed),
    "arima": lambda seed: ArimaForecaster(1, 1, max_horizon_s=H_S, max_fit_points=300, seed=seed),
    "ewma": lambda seed: HoltWintersForecaster(None, max_horizon_s=H_S, seed=seed),
    "lightgbm": lambda seed: LightGbmForecaster(
        max_horizon_s=H_S, n_estimators=40, max_rows=5000, num_threads=1, seed=seed
    ),
}


def _lstm_factory(seed: int) -> Forecaster:
    from wattwise.predict.lstm import LstmForecaster

    return LstmForecaster(max_horizon_s=H_S, epochs=2, hidden=8, max_windows=500, num_threads=1, seed=seed)


try:
    import torch  # noqa: F401

    FACTORIES["lstm"] = _lstm_factory
except ImportError:  # the `ml` extra is optional; CI installs it
    pass

NAMES = sorted(FACTORIES)


@pytest.fixture(params=NAMES)
def make(request: pytest.FixtureRequest) -> Callable[[int], Forecaster]:
    return FACTORIES[request.param]


def test_is_a_forecaster(make: Callable[[int], Forecaster]) -> None:
    assert isinstance(make(0), Forecaster)


def test_seeded_determinism(make: Callable[[int], Forecaster], series: Series) -> None:
    a, b = make(3), make(3)
    a.fit(series)
    b.fit(series)
    fa, fb = a.predict(H_S, STEP_S), b.predict(H_S, STEP_S)
    np.testing.assert_array_equal(fa.point, fb.point)
    np.testing.assert_array_equal(fa.upper, fb.upper)


def test_inputs_not_mutated(make: Callable[[int], Forecaster]) -> None:
    t = synthetic_series().t_s.copy()
    v = synthetic_series().value.copy()
    v_before = v.copy()
    f = make(0)
    f.fit(Series(t, v))
    f.predict_paths(Series(t, v), t[-10:-5], H_S)
    np.testing.assert_array_equal(v, v_before)


def test_horizon_step_respected_no_nan_and_band_contains_point(
    make: Callable[[int], Forecaster], series: Series
) -> None:
    f = make(0)
    f.fit(series)
    fc = f.predict(horizon_s=3 * 3600.0, step_s=2 * STEP_S)
    assert fc.t_s.shape == (9,)
    np.testing.assert_allclose(np.diff(fc.t_s), 2 * STEP_S)
    assert fc.t_s[0] == pytest.approx(series.t_s[-1] + 2 * STEP_S)
    for arr in (fc.point, fc.lower, fc.upper):
        assert np.all(np.isfinite(arr))
    assert np.all(fc.lower <= fc.point)
    assert np.all(fc.point <= fc.upper)
    assert fc.level == pytest.approx(0.95)


def test_training_range_is_the_history(make: Callable[[int], Forecaster], series: Series) -> None:
    f = make(0)
    f.fit(series)
    assert f.training_range.start_s == series.t_s[0]
    assert f.training_range.end_s == series.t_s[-1]


def test_predict_paths_never_looks_ahead(make: Callable[[int], Forecaster], series: Series) -> None:
    f = make(0)
    f.fit(series.slice_s(-np.inf, series.t_s[500]))
    origin = series.t_s[[600, 700]]
    base = f.predict_paths(series, origin, H_S)
    changed = series.value.copy()
    changed[701:] += 500.0  # the future of the later origin
    after = f.predict_paths(Series(series.t_s, changed), origin, H_S)
    np.testing.assert_allclose(after.point, base.point)


def test_update_moves_the_origin(make: Callable[[int], Forecaster], series: Series) -> None:
    f = make(0)
    f.fit(series.slice_s(-np.inf, series.t_s[700]))
    f.update(series.slice_s(series.t_s[700], np.inf))
    fc = f.predict(H_S, STEP_S)
    assert fc.t_s[0] == pytest.approx(series.t_s[-1] + STEP_S)
    assert np.all(np.isfinite(fc.point))


def test_predict_after_update_equals_predict_paths_at_the_last_origin(
    make: Callable[[int], Forecaster], series: Series
) -> None:
    f = make(0)
    f.fit(series.slice_s(-np.inf, series.t_s[700]))
    f.update(series.slice_s(series.t_s[700], np.inf))
    fc = f.predict(H_S, STEP_S)
    paths = f.predict_paths(series, series.t_s[-1:], H_S)
    np.testing.assert_allclose(fc.point, paths.point[0], rtol=1e-9)
    np.testing.assert_allclose(fc.upper, paths.upper[0], rtol=1e-9)


def test_lstm_extra_is_installed_where_ci_runs() -> None:
    from tests.conftest import need

    try:
        import torch
    except ImportError:
        torch = None
    need(torch is not None, "torch (the `ml` extra) is not installed: the LSTM is not tested")
    assert "lstm" in FACTORIES
