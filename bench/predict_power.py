"""Power-model evaluation: nested leave-one-server-out on SPECpower curves, then rack aggregation.

The shipped model (``SpecPowerModel()``, ``shape="auto"``) picks its shape family and kernel
bandwidth by leave-one-out over the curves it is fitted on; here it is fitted on all curves but
the held-out server's, so the choice is nested inside the outer leave-one-out and never sees the
held-out server. A second, harsher split holds out the server's whole platform family.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from predict_data import DATASETS, specpower_curves
from wattwise.predict.power_model import KNOTS_FRAC, LinearPowerModel, SpecPowerModel, interior_mape_pct

# Curves of one platform family (same board generation or chassis line, often the same CPU and
# date): a sibling in the fit set makes a held-out server easy, so the platform split drops them all.
PLATFORM_KEYS = (
    ("PowerEdge R620", "dell-12g"),
    ("PowerEdge R720", "dell-12g"),
    ("PowerEdge T620", "dell-12g"),
    ("PowerEdge R640", "dell-14g"),
    ("PowerEdge R740", "dell-14g"),
    ("PowerEdge R940", "dell-14g"),
    ("x3550", "ibm-x3550"),
    ("x3250", "ibm-x3250"),
    ("RH2288 V2", "huawei-rh2288v2"),
    ("6025B-TR+", "supermicro-6025b"),
    ("ML110", "hp-ml110"),
    (" F2 ", "acer-f2"),
)
VARIANTS = (
    ("shipped", "auto: shape chosen by inner leave-one-out (shipped)"),
    ("idle_ratio", "shape ~ idle/peak (previously shipped)"),
    ("median", "median shape"),
    ("linear", "linear (baseline)"),
)


@dataclass(frozen=True)
class PowerEval:
    """Per-server MAPE (leave-one-server-out and leave-one-platform-out) and rack aggregation."""

    per_server: pd.DataFrame
    per_platform: pd.DataFrame
    choices: dict[str, Counter[str]]
    rack: pd.DataFrame


def _curves() -> tuple[list[str], np.ndarray]:
    df = specpower_curves()
    cols = ["watts_active_idle"] + [f"watts_{p}pct" for p in range(10, 101, 10)]
    return df["system"].tolist(), df[cols].to_numpy(np.float64)


def platform_of(name: str) -> str:
    """Platform family of a SPECpower system name (the name itself when it has no known sibling)."""
    return next((fam for key, fam in PLATFORM_KEYS if key in f"{name} "), name)


def folds(names: list[str], by_platform: bool) -> Iterator[tuple[int, np.ndarray]]:
    """(held-out index, fit indices): every server but the held-out one (or but its platform family)."""
    group = [platform_of(n) if by_platform else n for n in names]
    for i in range(len(names)):
        yield i, np.array([j for j in range(len(names)) if group[j] != group[i]], dtype=np.int64)


def _label(model: SpecPowerModel) -> str:
    if model.selected_shape == "neighbours":
        return f"neighbours@{model.selected_bandwidth_frac:g}"
    return model.selected_shape


def held_out(by_platform: bool = False) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, Counter[str]]:
    """MAPE at 10-90 % load of each server predicted by models fitted without it.

    Returns:
        Per-server MAPE of each variant, the shipped and linear predicted curves (W), and how
        often the shipped model's inner leave-one-out chose each shape.
    """
    names, curves = _curves()
    rows, choices = [], Counter[str]()
    pred = {v: np.zeros_like(curves) for v, _ in VARIANTS}
    for i, fit_idx in folds(names, by_platform):
        idle, peak = curves[i, 0], curves[i, -1]
        for variant, _ in VARIANTS:
            model = LinearPowerModel() if variant == "linear" else SpecPowerModel(shape=_shape(variant))
            model.fit_curves(curves[fit_idx])  # the held-out server is not in fit_idx
            pred[variant][i] = model.predict_w(KNOTS_FRAC, idle_w=idle, peak_w=peak)
            if variant == "shipped" and isinstance(model, SpecPowerModel):
                choices[_label(model)] += 1
        row: dict[str, object] = {"server": names[i], "fit_servers": len(fit_idx)}
        row |= {f"{v}_mape_pct": interior_mape_pct(pred[v][i], curves[i]) for v, _ in VARIANTS}
        rows.append(row)
    return pd.DataFrame(rows), pred["shipped"], pred["linear"], choices


def _shape(variant: str) -> str:
    return "auto" if variant == "shipped" else variant


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
    Each server's prediction uses the model fitted without it (nested leave-one-out).
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
    """Both held-out splits, then rack aggregation of the leave-one-server-out predictions."""
    per, learned, linear, by_server = held_out(by_platform=False)
    per_platform, _, _, by_platform = held_out(by_platform=True)
    choices = {"server": by_server, "platform": by_platform}
    return PowerEval(per, per_platform, choices, rack_aggregation(learned, linear, seed))


def _summary_rows(per: pd.DataFrame) -> list[str]:
    out = []
    for variant, label in VARIANTS:
        v = per[f"{variant}_mape_pct"]
        n_ok = int((v <= 5).sum())
        out.append(f"| {label} | {v.mean():.2f} | {v.median():.2f} | {v.max():.2f} | {n_ok}/{len(v)} |")
    return out


def _choices(counts: Counter[str]) -> str:
    return ", ".join(f"{label} in {n} folds" for label, n in counts.most_common())


def _sibling_note(ev: PowerEval) -> str:
    by_server, by_platform = ev.per_server.mean(numeric_only=True), ev.per_platform.mean(numeric_only=True)
    gain_server = by_server["idle_ratio_mape_pct"] - by_server["shipped_mape_pct"]
    gain_platform = by_platform["idle_ratio_mape_pct"] - by_platform["shipped_mape_pct"]
    return (
        f"With platform siblings out, the shipped model's mean is {by_platform['shipped_mape_pct']:.2f} % "
        f"({'meets' if by_platform['shipped_mape_pct'] <= 5.0 else 'misses'} 5 %), {gain_platform:.2f} points "
        f"below the knots-linear-in-idle/peak model against {gain_server:.2f} points with them in"
        + (
            ": much of the gain comes from a sibling platform's curve being in the fit set."
            if gain_platform < gain_server
            else "."
        )
    )


def section_lines(ev: PowerEval, rack_md: list[str]) -> list[str]:
    """Report section 2 (the power model), given the rack table already rendered as markdown rows."""
    shipped = ev.per_server["shipped_mape_pct"]
    met = shipped.mean() <= 5.0
    head = ["| model | mean MAPE % | median MAPE % | max MAPE % | servers ≤5 % |", "|---|---|---|---|---|"]
    return [
        "## 2. Workload-signature power model (SPECpower_ssj2008) — goal: MAPE ≤5 % on held-out servers",
        "",
        "Each server is predicted from its datasheet idle and 100 % watts only, by models fitted on the other",
        "curves; MAPE over its 10–90 % points. The shipped `SpecPowerModel()` chooses its shape by leave-one-out",
        "over the curves it is given: knots linear in idle/peak, the median shape, or a Gaussian-kernel average",
        "of the fitted shapes weighted by closeness in idle/peak (bandwidths "
        + ", ".join(f"{b:g}" for b in SpecPowerModel().candidate_bandwidths_frac)
        + "). That choice is nested inside",
        "the outer split: the held-out server takes no part in fitting or in choosing (`folds` in",
        "`bench/predict_power.py`). The other rows are fixed variants and the linear idle→peak baseline,",
        "fitted on the same folds.",
        "",
        f"**Leave-one-server-out** (25 curves; each fit on 24). Inner choice: {_choices(ev.choices['server'])}.",
        "",
        *head,
        *_summary_rows(ev.per_server),
        "",
        f"Goal (mean ≤5 %, leave-one-server-out): {'met' if met else 'NOT met'}.",
        "",
        "**Leave-one-platform-out** (harsher check, not the goal's split): the held-out server's platform",
        "siblings (same board generation or chassis line, e.g. Dell R620/R720/T620, R640/R740/R940, the two",
        "IBM x3550 and x3250, the four Acer F2) leave the fit set too. Inner choice:",
        f"{_choices(ev.choices['platform'])}.",
        "",
        *head,
        *_summary_rows(ev.per_platform),
        "",
        _sibling_note(ev),
        "The candidate set was written after looking at leave-one-out results of these 25 curves (no other",
        "full curves exist here), so both splits' figures are somewhat optimistic.",
        "",
        "Aggregation (semi-synthetic: real PlanetLab CPU traces drive each held-out server; 'actual' is its own",
        "SPECpower curve, 'predicted' the leave-one-server-out model), MAPE of the summed power:",
        "",
        *rack_md,
        "",
        "Memory, network, storage and ambient terms exist (non-negative least squares on measured power) but no",
        "data set here pairs them with measured server power, so they are tested on synthetic data only.",
        "",
    ]
