"""Loaders for the real data sets the prediction backtest uses (bench-side I/O only)."""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from wattwise.predict.base import Frame, Series

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("WATTWISE_DATASETS_DIR", REPO.parent / "shared" / "datasets"))

# Google's trace starts at 2019-05-01 00:00 PDT (07:00 UTC); time_us counts from there.
GOOGLE_T0_S = datetime(2019, 5, 1, 7, 0, tzinfo=UTC).timestamp()


def google_pdus() -> dict[str, Series]:
    """The 5 PDUs of Google cell a (5-min normalised power), keyed by PDU name."""
    df = pd.read_csv(DATASETS / "google_powerdata2019_cella" / "cella_pdu6-10_5min.csv.gz")
    out: dict[str, Series] = {}
    for pdu, part in df.groupby("pdu", sort=True):
        part = part.sort_values("time_us")
        t_s = GOOGLE_T0_S + part["time_us"].to_numpy(dtype=np.float64) / 1e6
        out[str(pdu)] = Series(t_s=t_s, value=part["measured_power_util"].to_numpy(dtype=np.float64))
    return out


def lumi_power_w() -> Series:
    """LUMI whole-system power in W (10-min, with jitter and two gaps)."""
    df = pd.read_csv(DATASETS / "hpc_system_power" / "lumi_power_10min.csv.gz").sort_values("timestamp_secs")
    df = df.drop_duplicates("timestamp_secs")
    return Series(
        t_s=df["timestamp_secs"].to_numpy(dtype=np.float64),
        value=df["measured_kW"].to_numpy(dtype=np.float64) * 1000.0,
    )


@dataclass(frozen=True)
class SmdMachine:
    """One SMD machine: unlabelled train frame, labelled test frame."""

    name: str
    train: Frame
    test: Frame
    label: np.ndarray


def smd_machines() -> list[SmdMachine]:
    """The 8 SMD machines (1 row = 60 s)."""
    root = DATASETS / "smd_server_machine" / "data"
    out = []
    for path in sorted(root.glob("machine-*_train.csv.gz")):
        name = path.name.removesuffix("_train.csv.gz")
        tr = pd.read_csv(path)
        te = pd.read_csv(root / f"{name}_test.csv.gz")
        cols = [c for c in tr.columns if c.startswith("m")]
        n_tr = len(tr)
        train = Frame(t_s=60.0 * np.arange(n_tr), values=tr[cols].to_numpy(np.float64), signals=tuple(cols))
        test = Frame(t_s=60.0 * (n_tr + np.arange(len(te))), values=te[cols].to_numpy(np.float64), signals=tuple(cols))
        out.append(SmdMachine(name, train, test, te["label"].to_numpy(np.int64)))
    return out


@dataclass(frozen=True)
class NabSeries:
    """One NAB series with its labelled anomaly windows and anomaly (failure) times."""

    name: str
    series: Series
    windows_s: list[tuple[float, float]]
    labels_s: list[float]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def nab_series(group: str) -> list[NabSeries]:
    """NAB series of ``group`` (``realKnownCause`` or ``realAWSCloudwatch``) with labels."""
    root = DATASETS / "nab_machine_metrics"
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    labels = json.loads((root / "labels" / "combined_labels.json").read_text())
    out = []
    for path in sorted((root / "data" / group).glob("*.csv.gz")):
        if path.name.startswith("machine-"):
            continue
        with gzip.open(path, "rt") as fh:
            df = pd.read_csv(fh)
        key = f"{group}/{path.name.removesuffix('.gz')}"
        t_s = np.array([_ts(x) for x in df["timestamp"]], dtype=np.float64)
        order = np.argsort(t_s, kind="stable")
        t_s, val = t_s[order], df["value"].to_numpy(np.float64)[order]
        keep = np.concatenate([[True], np.diff(t_s) > 0])
        out.append(
            NabSeries(
                name=path.name.removesuffix(".csv.gz"),
                series=Series(t_s=t_s[keep], value=val[keep]),
                windows_s=[(_ts(a), _ts(b)) for a, b in windows.get(key, [])],
                labels_s=[_ts(x) for x in labels.get(key, [])],
            )
        )
    return out


def specpower_curves() -> pd.DataFrame:
    """The 25 full 11-point SPECpower curves (W at idle, 10 %, ..., 100 %)."""
    return pd.read_csv(DATASETS / "specpower_ssj2008" / "power_curves_11pt.csv")


def specpower_results() -> pd.DataFrame:
    """The 1088 SPECpower results (idle and 100 % W, cores, memory)."""
    return pd.read_csv(DATASETS / "specpower_ssj2008" / "specpower_results_idle_full_2026-03-09.csv")
