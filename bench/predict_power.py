"""Power-model evaluation: leave-one-server-out on SPECpower curves, then rack aggregation."""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np
import pandas as pd

from predict_data import DATASETS, specpower_curves
from wattwise.predict.power_model import KNOTS_FRAC, LinearPowerModel, SpecPowerModel

INTERIOR = slice(1, 10)  # 10 % ... 90 %: idle and 100 % are the datasheet inputs


@dataclass(frozen=True)
class PowerEval:
    """Per-server and aggregate MAPE of the learned and linear models."""

    per_server: pd.DataFrame
    rack: pd.DataFrame


def _curves() -> tuple[list[str], np.ndarray]:
    df = specpower_curves()
    cols = ["watts_active_idle"] + [f"watts_{p}pct" for p in range(10, 101, 10)]
    return df["system"].tolist(), df[cols].to_numpy(np.float64)


def leave_one_out() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """MAPE at 10-90 % load of each server with the shape fitted on the other 24."""
    names, curves = _curves()
    rows, pred_learned, pred_linear = [], np.zeros_like(curves), np.zeros_like(curves)
    for i, name in enumerate(names):
        model, median = SpecPowerModel(), SpecPowerModel(shape="median")
        model.fit_curves(np.delete(curves, i, axis=0))  # held out from fitting
        median.fit_curves(np.delete(curves, i, axis=0))
        idle, peak = curves[i, 0], curves[i, -1]
        pred_learned[i] = model.predict_w(KNOTS_FRAC, idle_w=idle, peak_w=peak)
        pred_median = median.predict_w(KNOTS_FRAC, idle_w=idle, peak_w=peak)
        pred_linear[i] = LinearPowerModel().predict_w(KNOTS_FRAC, idle_w=idle, peak_w=peak)
        actual = curves[i, INTERIOR]
        rows.append(
            {
                "server": name,
                "learned_mape_pct": 100 * np.mean(np.abs(pred_learned[i, INTERIOR] - actual) / actual),
                "median_shape_mape_pct": 100 * np.mean(np.abs(pred_median[INTERIOR] - actual) / actual),
                "linear_mape_pct": 100 * np.mean(np.abs(pred_linear[i, INTERIOR] - actual) / actual),
            }
        )
    return pd.DataFrame(rows), pred_learned, pred_linear


def planetlab_cpu_frac(n: int, seed: int) -> np.ndarray:
    """``n`` real PlanetLab day traces (288 x 5 min) of CPU use as fractions, picked with ``seed``."""
    with gzip.open(DATASETS / "workload_planetlab_vm_cpu" / "planetlab_cpu_5min.csv.gz", "rt") as fh:
        df = pd.read_csv(fh)
    vals = df[[c for c in df.columns if c.startswith("c")]].to_numpy(np.float64) / 100.0
    pick = np.random.default_rng(seed).choice(vals.shape[0], size=n, replace=False)
    return vals[pick]


def rack_aggregation(pred_learned: np.ndarray, pred_linear: np.ndarray, seed: int) -> pd.DataFrame:
    """Racks of 5 held-out servers driven by real CPU traces; PDU = 5 racks.

    "Actual" power is the server's own measured SPECpower curve interpolated at the trace's
    load (semi-synthetic: no data set pairs real server telemetry with real PDU power).
    Each server's prediction uses the shape fitted without it (leave-one-out).
    """
    names, curves = _curves()
    n = len(names)
    # Several VMs share a host: the host load is the sum of 4 VM traces, capped at 100 %.
    vm = planetlab_cpu_frac(4 * n, seed)
    load = np.clip(vm.reshape(n, 4, -1).sum(axis=1), 0.0, 1.0)
    actual = np.stack([np.interp(load[i], KNOTS_FRAC, curves[i]) for i in range(n)])
    learned = np.stack([np.interp(load[i], KNOTS_FRAC, pred_learned[i]) for i in range(n)])
    linear = np.stack([np.interp(load[i], KNOTS_FRAC, pred_linear[i]) for i in range(n)])
    rows = []
    for level, size in (("server", 1), ("rack (5 servers)", 5), ("PDU (25 servers)", 25)):
        groups = [list(range(k, min(k + size, n))) for k in range(0, n, size)]
        for label, pred in (("learned", learned), ("linear", linear)):
            errs = [np.mean(np.abs(pred[g].sum(0) - actual[g].sum(0)) / actual[g].sum(0)) for g in groups]
            rows.append({"level": level, "model": label, "groups": len(groups), "mape_pct": 100 * float(np.mean(errs))})
    return pd.DataFrame(rows)


def evaluate(seed: int) -> PowerEval:
    """Run both evaluations."""
    per, learned, linear = leave_one_out()
    return PowerEval(per, rack_aggregation(learned, linear, seed))
