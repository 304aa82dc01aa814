"""Model development on VALIDATION ranges only: never reads the test range of bench/backtest.py.

Each series' training range (the first three quarters) is split again: fit on its first
75 %, score on its last 25 % (the validation range). Design choices are made here; the test
range is used once, by bench/backtest.py.

    .venv/bin/python bench/predict_dev.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from predict_data import google_pdus, lumi_power_w
from wattwise.predict.backtest import holdout_split, score_paths
from wattwise.predict.base import Forecaster, Series
from wattwise.predict.gbm import LightGbmForecaster
from wattwise.predict.naive import SeasonalNaiveForecaster

VARIANTS = {
    "persistence": lambda h: SeasonalNaiveForecaster(None, max_horizon_s=h),
    "LightGBM": lambda h: LightGbmForecaster(max_horizon_s=h, num_threads=1),
    "LightGBM smooth": lambda h: LightGbmForecaster(max_horizon_s=h, num_threads=1, smooth_features=True),
}


def validate(name: str, series: Series) -> None:
    train_range = holdout_split(series, 0.25).train  # the backtest's training range
    val = holdout_split(train_range, 0.25)  # its own held-out tail
    for lead in (3600.0, 86_400.0):
        row = []
        for label, make in VARIANTS.items():
            f: Forecaster = make(lead)
            f.fit(val.train)
            paths = f.predict_paths(train_range, val.origins_t_s(train_range), lead)
            row.append(f"{label} {score_paths(train_range, paths, lead, val, f.training_range).mape_pct:.3f}")
        print(name, f"{lead / 3600:g} h:", " | ".join(row), flush=True)


if __name__ == "__main__":
    for key, s in google_pdus().items():
        validate(key, s)
    validate("LUMI", lumi_power_w())
