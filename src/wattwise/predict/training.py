"""Train one demand forecaster: held-out evaluation against persistence, then a refit on everything.

Pure: the history comes in, the fitted model and its metadata (text) go out. ``wattwise train``
and the controller's periodic retraining (:mod:`wattwise.control.retrain`, in a worker process)
both call :func:`train_one`.

>>> import numpy as np
>>> t = np.arange(0.0, 8 * 3600.0, 60.0)
>>> history = Series(t, 1000.0 + 100.0 * np.sin(2 * np.pi * t / 3600.0))
>>> model, meta = train_one(history, "persistence", seed=0, horizon_s=900.0, test_frac=0.25)
>>> meta["beats_baseline"], meta["step_s"], float(meta["eval_test_start_s"]) < float(meta["train_end_s"])
('false', '60.0', True)
"""

from __future__ import annotations

from wattwise.predict.backtest import holdout_split, score_paths
from wattwise.predict.base import Forecaster, Series
from wattwise.predict.naive import SeasonalNaiveForecaster
from wattwise.predict.registry import dump_model

MODELS = ("lightgbm", "holt-winters", "seasonal-naive", "persistence", "lstm")


def make_forecaster(model: str, seed: int, horizon_s: float) -> Forecaster:
    """Build a forecaster; heavy libraries are imported here so ``wattwise --help`` stays fast."""
    if model == "lightgbm":
        from wattwise.predict.gbm import LightGbmForecaster

        return LightGbmForecaster(max_horizon_s=horizon_s, seed=seed)
    if model == "holt-winters":
        from wattwise.predict.holt_winters import HoltWintersForecaster

        return HoltWintersForecaster(86_400.0, max_horizon_s=horizon_s, seed=seed)
    if model == "lstm":
        from wattwise.predict.lstm import LstmForecaster  # the optional `ml` extra

        return LstmForecaster(max_horizon_s=horizon_s, seed=seed)
    season_s = 86_400.0 if model == "seasonal-naive" else None
    return SeasonalNaiveForecaster(season_s, max_horizon_s=horizon_s, seed=seed)


def train_one(
    series: Series, model: str, seed: int, horizon_s: float, test_frac: float
) -> tuple[Forecaster, dict[str, str]]:
    """Held-out evaluation against persistence, then a refit on the full history.

    Args:
        series: The history, in the metric's SI unit.
        model: One of :data:`MODELS`.
        seed: Seed of every random choice.
        horizon_s: Longest horizon calibrated and scored, s.
        test_frac: Held-out fraction (the tail) scored for the metadata.

    Returns:
        The model refitted on all of ``series``, and its metadata: training range, held-out
        range, MAPE of the model and of persistence there, coverage, ``beats_baseline``
        (``true`` when the model's held-out MAPE is below persistence's), ``step_s``.

    Raises:
        PredictionError: The history is too short or unusable.
    """
    split = holdout_split(series, test_frac)
    scores = {}
    for label, name in (("model", model), ("persistence", "persistence")):
        f = make_forecaster(name, seed, horizon_s)
        f.fit(split.train)
        paths = f.predict_paths(series, split.origins_t_s(series), horizon_s)
        scores[label] = score_paths(series, paths, horizon_s, split, f.training_range)
    final = make_forecaster(model, seed, horizon_s)
    final.fit(series)
    meta = {
        "model": model,
        "class": type(final).__name__,
        "seed": str(seed),
        "horizon_s": str(horizon_s),
        "train_start_s": str(final.training_range.start_s),
        "train_end_s": str(final.training_range.end_s),
        "eval_test_start_s": str(split.test_start_s),
        "eval_test_end_s": str(split.test_end_s),
        "eval_mape_pct": f"{scores['model'].mape_pct:.4f}",
        "eval_persistence_mape_pct": f"{scores['persistence'].mape_pct:.4f}",
        "eval_coverage_frac": f"{scores['model'].coverage_frac:.4f}",
        "eval_interval_level": str(final.level),
        "beats_baseline": str(scores["model"].mape_pct < scores["persistence"].mape_pct).lower(),
        "step_s": str(series.step_s),
    }
    return final, meta


def train_to_blob(
    series: Series, model: str, seed: int, horizon_s: float, test_frac: float
) -> tuple[bytes, dict[str, str]]:
    """:func:`train_one`, with the fitted model serialised (what a worker process sends back).

    Raises:
        PredictionError: The history is too short or unusable.
    """
    fitted, meta = train_one(series, model, seed, horizon_s, test_frac)
    return dump_model(fitted), meta
