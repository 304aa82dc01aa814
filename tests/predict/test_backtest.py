"""A model trained on one range is never evaluated on that range; scoring is honest."""

from __future__ import annotations

import numpy as np
import pytest
from tests.predict.conftest import STEP_S, synthetic_series

from wattwise.errors import PredictionError
from wattwise.predict.backtest import holdout_split, score_paths
from wattwise.predict.base import TrainingRange
from wattwise.predict.conformal import SplitConformal
from wattwise.predict.gbm import LightGbmForecaster
from wattwise.predict.naive import SeasonalNaiveForecaster

H_S = 3 * 3600.0


def test_split_is_disjoint_in_time() -> None:
    s = synthetic_series()
    split = holdout_split(s, 0.25)
    assert split.train.t_s[-1] < split.test_start_s
    assert len(split.train) == int(len(s) * 0.75)
    origins = split.origins_t_s(s)
    assert origins[0] == split.train.t_s[-1]  # first forecast's first target is the first test sample
    assert np.all(origins + STEP_S >= split.test_start_s)


def test_trained_model_is_scored_only_on_targets_after_its_training_range() -> None:
    s = synthetic_series()
    split = holdout_split(s, 0.25)
    f = LightGbmForecaster(max_horizon_s=H_S, n_estimators=20, max_rows=5000, num_threads=1)
    f.fit(split.train)
    assert f.training_range.end_s < split.test_start_s
    paths = f.predict_paths(s, split.origins_t_s(s), H_S)
    score = score_paths(s, paths, 3600.0, split, f.training_range)
    assert score.n > 0
    assert score.target_t_s.min() >= split.test_start_s
    assert score.target_t_s.min() > f.training_range.end_s


def test_scoring_a_model_on_its_own_training_range_raises() -> None:
    s = synthetic_series()
    split = holdout_split(s, 0.25)
    f = SeasonalNaiveForecaster(None, max_horizon_s=H_S)
    f.fit(s)  # leaks: fitted on everything, including the test range
    paths = f.predict_paths(s, split.origins_t_s(s), H_S)
    with pytest.raises(PredictionError, match="trained up to"):
        score_paths(s, paths, 3600.0, split, f.training_range)


def test_score_refuses_targets_before_the_test_range() -> None:
    s = synthetic_series()
    split = holdout_split(s, 0.25)
    f = SeasonalNaiveForecaster(None, max_horizon_s=H_S)
    f.fit(split.train)
    early = s.t_s[100:200]
    paths = f.predict_paths(s, early, H_S)
    with pytest.raises(PredictionError, match="before the test range"):
        score_paths(s, paths, 3600.0, split, TrainingRange(0.0, 1.0))


def test_conformal_coverage_is_close_to_nominal_on_exchangeable_residuals() -> None:
    rng = np.random.default_rng(11)
    cal = SplitConformal(level=0.9)
    cal.fit(rng.standard_t(4, size=(2000, 3)))
    test = rng.standard_t(4, size=(20000, 3))
    lo, hi = cal.bands(np.zeros_like(test), np.broadcast_to(np.arange(3), test.shape))
    coverage = np.mean((test >= lo) & (test <= hi))
    assert 0.88 <= coverage <= 0.92


def test_conformal_rejects_too_few_residuals_and_bad_level() -> None:
    with pytest.raises(PredictionError, match="too short"):
        SplitConformal().fit(np.zeros((5, 2)))
    with pytest.raises(PredictionError, match="level"):
        SplitConformal(level=1.5)


def test_held_out_coverage_on_a_real_google_pdu_slice(datasets_dir: object) -> None:
    import pandas as pd

    from wattwise.predict.base import Series

    df = pd.read_csv(datasets_dir / "google_powerdata2019_cella" / "cella_pdu6-10_5min.csv.gz")  # type: ignore[operator]
    part = df[df["pdu"] == "pdu6"].sort_values("time_us").iloc[: 288 * 12]
    s = Series(part["time_us"].to_numpy(float) / 1e6, part["measured_power_util"].to_numpy(float))
    split = holdout_split(s, 0.25)
    f = LightGbmForecaster(max_horizon_s=3600.0, n_estimators=60, max_rows=20000, num_threads=1)
    f.fit(split.train)
    paths = f.predict_paths(s, split.origins_t_s(s), 3600.0)
    score = score_paths(s, paths, 3600.0, split, f.training_range)
    assert score.n > 500
    assert 0.85 <= score.coverage_frac <= 1.0
    assert score.mape_pct < 10.0
