"""Demand-forecast backtest: baselines vs learned models on held-out time ranges."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from wattwise.predict.arima import ArimaForecaster
from wattwise.predict.backtest import HoldoutSplit, PathScore, holdout_split, score_paths
from wattwise.predict.base import Forecaster, ForecastPaths, Series
from wattwise.predict.conformal import track_coverage
from wattwise.predict.gbm import LightGbmForecaster
from wattwise.predict.holt_winters import HoltWintersForecaster
from wattwise.predict.naive import SeasonalNaiveForecaster

logger = logging.getLogger(__name__)

DAY_S = 86_400.0
NAIVE = ("persistence", "same time yesterday", "same time last week")
LEARNED = ("LightGBM", "LSTM", "ARIMA")
TRACK_ETA = 0.02
"""Step of the online coverage tracker's log scale: set before any run, never fitted."""


def forecasters(seed: int, horizon_s: float) -> dict[str, Forecaster]:
    """Every forecaster compared, each trained and calibrated for leads up to ``horizon_s``.

    Hyper-parameters are the constructor defaults. One model per horizon (direct strategy):
    a 1 h model and a 24 h model are fitted separately.
    """
    h = {"max_horizon_s": horizon_s, "seed": seed}
    out: dict[str, Forecaster] = {
        "persistence": SeasonalNaiveForecaster(None, **h),
        "same time yesterday": SeasonalNaiveForecaster(DAY_S, **h),
        "same time last week": SeasonalNaiveForecaster(7 * DAY_S, **h),
        "Holt-Winters": HoltWintersForecaster(DAY_S, **h),
        # One LightGBM thread: on a shared 2-core box two OpenMP threads spin against other load.
        "LightGBM": LightGbmForecaster(num_threads=1, **h),
        "ARIMA": ArimaForecaster(2, 1, **h),
    }
    try:
        from wattwise.predict.lstm import LstmForecaster

        out["LSTM"] = LstmForecaster(**h)
    except ImportError:
        logger.warning("torch not installed: LSTM skipped")
    return out


@dataclass
class SeriesResult:
    """Scores of every forecaster on one series."""

    name: str
    split: HoldoutSplit
    scores: dict[str, dict[float, PathScore]] = field(default_factory=dict)
    tracked: dict[str, dict[float, PathScore]] = field(default_factory=dict)
    paths: dict[tuple[str, float], ForecastPaths] = field(default_factory=dict)
    fit_s: dict[str, float] = field(default_factory=dict)

    def best_naive(self, lead_s: float) -> str:
        """The naive baseline with the lowest test MAPE at ``lead_s`` (hindsight: the strictest bar)."""
        return min(NAIVE, key=lambda k: self.scores[k][lead_s].mape_pct)

    def best_learned(self, lead_s: float) -> str:
        """The learned model with the lowest test MAPE at ``lead_s``."""
        have = [k for k in LEARNED if k in self.scores]
        return min(have, key=lambda k: self.scores[k][lead_s].mape_pct)


def run_series(name: str, series: Series, leads_s: tuple[float, ...], test_frac: float, seed: int) -> SeriesResult:
    """Fit every forecaster on the training range and score it on the test range."""
    import time

    split = holdout_split(series, test_frac)
    res = SeriesResult(name, split)
    origins = split.origins_t_s(series)
    for lead in leads_s:
        for label, f in forecasters(seed, lead).items():
            t0 = time.perf_counter()
            f.fit(split.train)
            assert f.training_range.end_s < split.test_start_s  # never evaluated on its training range
            paths = f.predict_paths(series, origins, lead)
            res.fit_s[label] = res.fit_s.get(label, 0.0) + time.perf_counter() - t0
            res.scores.setdefault(label, {})[lead] = score_paths(series, paths, lead, split, f.training_range)
            tracked = track_coverage(paths, series, eta=TRACK_ETA)
            res.paths[(label, lead)] = tracked  # the bands served: tracked online (1d)
            res.tracked.setdefault(label, {})[lead] = score_paths(series, tracked, lead, split, f.training_range)
            logger.info("%s %s lead %s: %.2f", name, label, lead, res.scores[label][lead].mape_pct)
    return res


def plot_band(series: Series, res: SeriesResult, model: str, lead_s: float, path: Path, unit: str, days: float) -> None:
    """Forecast vs actual with the interval band over the first ``days`` of the test range."""
    p = res.paths[(model, lead_s)]
    j = int(np.flatnonzero(np.isclose(p.lead_s, lead_s))[0])
    t_target = p.origin_t_s + lead_s
    end = res.split.test_start_s + days * DAY_S
    scored = np.isin(t_target, res.scores[model][lead_s].target_t_s)  # hide targets inside data gaps
    keep = (t_target >= res.split.test_start_s) & (t_target <= end) & scored
    act = (series.t_s >= res.split.test_start_s) & (series.t_s <= end)
    x0 = res.split.test_start_s
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.fill_between(
        (t_target[keep] - x0) / 3600,
        p.lower[keep, j],
        p.upper[keep, j],
        color="tab:blue",
        alpha=0.25,
        label=f"{p.level:.0%} interval (tracked online)",
    )
    ax.plot((series.t_s[act] - x0) / 3600, series.value[act], color="black", lw=0.8, label="actual")
    ax.plot((t_target[keep] - x0) / 3600, p.point[keep, j], color="tab:blue", lw=0.9, label=f"{model} forecast")
    ax.set_xlabel("hours into the test range")
    ax.set_ylabel(unit)
    ax.set_title(f"{res.name}: {model}, lead {lead_s / 3600:g} h (held-out range)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(results: list[SeriesResult], leads_s: tuple[float, ...], goal_frac: dict[float, float]) -> list[str]:
    """Markdown rows: MAPE of every model per series and lead, with the goal check."""
    models = list(results[0].scores)
    lines = []
    for lead in leads_s:
        lines.append(f"\n**Lead {lead / 3600:g} h** — MAPE % on the test range (n = scored targets)\n")
        lines.append("| series | " + " | ".join(models) + " | best naive | best learned | gain vs best naive | goal |")
        lines.append("|---" * (len(models) + 5) + "|")
        for r in results:
            bn, bl = r.best_naive(lead), r.best_learned(lead)
            gain = 1 - r.scores[bl][lead].mape_pct / r.scores[bn][lead].mape_pct
            goal = goal_frac[lead]
            cells = [f"{r.scores[m][lead].mape_pct:.2f}" for m in models]
            lines.append(
                f"| {r.name} (n={r.scores[bn][lead].n}) | "
                + " | ".join(cells)
                + f" | {bn} | {bl} | {gain:+.1%} | ≥{goal:.0%}: {'met' if gain >= goal else 'NOT met'} |"
            )
    return lines


def interval_rows(
    results: list[SeriesResult], leads_s: tuple[float, ...], shipped: dict[tuple[str, float], str]
) -> list[str]:
    """Coverage and width of the shipped model's intervals vs the conformal naive interval.

    Both calibrations are shown: split conformal as fitted, and the same bands tracked online
    (:func:`wattwise.predict.conformal.track_coverage`); the goal columns read the tracked ones,
    which are what a forecaster updated with every new reading would serve.
    """
    lines = [
        "| series | lead | shipped model | split: coverage | split: width | tracked: coverage | tracked: width"
        " | best naive, tracked: coverage | best naive, tracked: width | narrower | coverage in 93–97 % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for lead in leads_s:
            m, bn = shipped[(r.name, lead)], r.best_naive(lead)
            s, t, b = r.scores[m][lead], r.tracked[m][lead], r.tracked[bn][lead]
            lines.append(
                f"| {r.name} | {lead / 3600:g} h | {m} | {s.coverage_frac:.3f} | {s.mean_width:.4g} | "
                f"{t.coverage_frac:.3f} | {t.mean_width:.4g} | "
                f"{b.coverage_frac:.3f} | {b.mean_width:.4g} | {'yes' if t.mean_width < b.mean_width else 'no'} | "
                f"{'yes' if 0.93 <= t.coverage_frac <= 0.97 else 'no'} |"
            )
    return lines


def shipped_models(results: list[SeriesResult], leads_s: tuple[float, ...]) -> dict[tuple[str, float], str]:
    """A learned model ships for (series, lead) only where it beats the best naive baseline."""
    out = {}
    for r in results:
        for lead in leads_s:
            bn, bl = r.best_naive(lead), r.best_learned(lead)
            out[(r.name, lead)] = bl if r.scores[bl][lead].mape_pct < r.scores[bn][lead].mape_pct else bn
    return out
