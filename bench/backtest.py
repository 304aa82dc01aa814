"""Prediction backtest: one command, held-out ranges only, report + plots.

    .venv/bin/python bench/backtest.py            # writes bench/reports/prediction.md + PNGs
    .venv/bin/python bench/backtest.py --only heartbeat   # rewrites section 5 of it only
    .venv/bin/python bench/backtest.py --only power       # rewrites section 2 of it only

Every model is fitted on a training range and scored on a later, disjoint test range
(rolling origins inside the test range; each forecast uses only data up to its origin).
Hyper-parameters and thresholds are constructor defaults fixed in the code, never tuned on
a test range. Every figure is printed with its baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import predict_detect
import predict_forecast as pf
import predict_heartbeat
import predict_power
import predict_twin
from predict_data import google_pdus, lumi_power_w

REPORTS = Path(__file__).resolve().parent / "reports"
SEED = 0
H1, H24 = 3600.0, 86_400.0


def _md(df: pd.DataFrame, floatfmt: str = ".3f") -> list[str]:
    cols = list(df.columns)
    out = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for r in df.itertuples(index=False):
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in r]
        out.append("| " + " | ".join(cells) + " |")
    return out


def demand_section(lines: list[str]) -> None:
    google = [pf.run_series(k, s, (H1, H24), 0.25, SEED) for k, s in google_pdus().items()]
    pdus = google_pdus()
    lumi_s = lumi_power_w()
    lumi = [pf.run_series("LUMI", lumi_s, (H1, H24), 0.25, SEED)]
    results = google + lumi
    shipped = pf.shipped_models(results, (H1, H24))
    r0 = google[0]
    lines += [
        "## 1. Demand forecasts",
        "",
        "Split: the last quarter of each series is the test range (Google cell a: last ~7.75 days of May 2019;",
        "LUMI: last ~30 days). Models are fitted on the first three quarters (of which the last quarter is the",
        "split-conformal calibration tail), then forecast from every 5-/10-min origin of the test range.",
        f"Google {r0.name}: train {len(r0.split.train)} samples, test starts at t={r0.split.test_start_s:.0f} s.",
        "Targets scored only inside the test range (`score_paths` raises otherwise).",
        "",
        "### 1a. Google PowerData2019 cell a (5 PDUs, 5-min) — goal: ≥25 % lower MAPE than the best naive",
    ]
    lines += pf.table(google, (H1, H24), {H1: 0.25, H24: 0.25})
    lines += [
        "",
        "### 1b. LUMI system power (10-min) — goals: 1 h ≥25 % below persistence; day-ahead ≥30 % below daily naive",
        "",
    ]
    lumi_r = lumi[0]
    lines += pf.table(lumi, (H1, H24), {H1: 0.25, H24: 0.30})
    p1 = lumi_r.scores["persistence"][H1].mape_pct
    d24 = lumi_r.scores["same time yesterday"][H24].mape_pct
    bl1, bl24 = lumi_r.best_learned(H1), lumi_r.best_learned(H24)
    lines += [
        "",
        f"LUMI against the goal's own baselines: 1 h {bl1} {lumi_r.scores[bl1][H1].mape_pct:.2f} % vs persistence "
        f"{p1:.2f} % ({1 - lumi_r.scores[bl1][H1].mape_pct / p1:+.1%}, goal ≥25 %); day-ahead {bl24} "
        f"{lumi_r.scores[bl24][H24].mape_pct:.2f} % vs daily naive {d24:.2f} % "
        f"({1 - lumi_r.scores[bl24][H24].mape_pct / d24:+.1%}, goal ≥30 %).",
        "",
        "### 1c. Which model ships (a learned model only where it beats the best naive on the test range)",
        "",
        "| series | lead | ships |",
        "|---|---|---|",
    ]
    lines += [f"| {k[0]} | {k[1] / 3600:g} h | {v} |" for k, v in shipped.items()]
    lines += [
        "",
        "How the models were chosen (so the reader can judge how blind these test figures are):",
        "",
        "- Hyper-parameters are the constructor defaults, written before the first run (LightGBM 300 rounds, lr 0.05,",
        "  31 leaves, L1 loss; LSTM window 36, hidden 32, 8 epochs; ARIMA(2,1,1); Holt-Winters constants chosen on",
        "  the fit head by one-step error).",
        "- One deviation was informed by this test range: a first version used a single 24 h model for both leads;",
        "  a run of `wattwise train` with a 1 h model (same last-quarter hold-out) scored better at 1 h, and the",
        "  backtest then switched to one direct model per horizon. The 1 h learned figures are therefore not blind.",
        "- An LSTM with 30 epochs was glanced at on the test range and not adopted. Smoothed seasonal features for",
        "  LightGBM were tried on a validation range inside the training data only (`bench/predict_dev.py`) and",
        "  rejected there.",
        "- The 'best naive' is picked per series and lead on the test range itself, the strictest bar available.",
    ]
    lines += [
        "",
        "### 1d. 95 % intervals (split conformal, tracked online) — goal: coverage 93–97 %, narrower than "
        "conformal naive",
        "",
        "Split conformal calibrates one band per lead on the training range's last quarter. The level and noise",
        "of these series drift after that, so the same bands are also tracked online: per lead, a scale on the",
        "band moves after each forecast whose target has already been measured at the origin being forecast",
        f"(log step {pf.TRACK_ETA} × (1 − α) on a miss, {pf.TRACK_ETA} × α on a hit; quantile tracking as in",
        "Angelopoulos, Candès and Tibshirani 2023). The step was set before the first run and not changed.",
        "The naive baselines' bands get the same tracking, so the width comparison is like for like.",
        "",
    ]
    lines += pf.interval_rows(results, (H1, H24), shipped)
    lines += [
        "",
        "Fit + backtest time per model (s): "
        + "; ".join(f"{r.name}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.fit_s.items()) for r in results),
        "",
    ]
    for series, res, unit, tag in (
        (pdus[r0.name], r0, "power / capacity", "google_" + r0.name),
        (lumi_s, lumi_r, "W", "lumi"),
    ):
        for lead in (H1, H24):
            model = shipped[(res.name, lead)]
            png = REPORTS / f"prediction_{tag}_{int(lead / 3600)}h.png"
            pf.plot_band(series, res, model, lead, png, unit, days=3.0)
            lines.append(f"![{res.name} {lead / 3600:g} h]({png.name})")
    lines.append("")


def power_section(lines: list[str]) -> None:
    ev = predict_power.evaluate(SEED)
    lines += predict_power.section_lines(ev, _md(ev.rack))


def detect_section(lines: list[str]) -> None:
    smd = predict_detect.smd(SEED)
    aws = predict_detect.nab_aws(SEED)
    lines += [
        "## 3. Instability / anomaly detection — goal: event recall ≥0.90, ≤0.5 false-alarm events per machine-day,",
        "median detection delay ≤3 samples (point-wise F1 reported; no point-adjusted F1)",
        "",
        "Thresholds are fixed on each machine's training range (SMD train half; NAB first 15 %) as the lowest",
        "training-score quantile whose alarm runs stay within 0.25 per day on training data.",
        "",
    ]
    for title, df in (("SMD (8 machines, 1-min)", smd), ("NAB AWS CloudWatch (17 series, 5-min)", aws)):
        lines += [f"### {title}", ""]
        summary = []
        for det, g in df.groupby("detector", sort=False):
            ev, dt = int(g["events"].sum()), int(g["detected"].sum())
            delays = [d for ds in g["all_delays"] for d in ds]
            fa_day = g["false_alarm_events"].sum() / g["days"].sum()
            med = float(np.median(delays)) if delays else float("nan")
            rec = dt / ev if ev else float("nan")
            summary.append(
                {
                    "detector": det,
                    "events": ev,
                    "detected": dt,
                    "event_recall": rec,
                    "false_alarms_per_day": fa_day,
                    "median_delay_samples": med,
                    "mean_point_f1": float(g["point_f1"].mean()),
                    "goal": "met" if rec >= 0.9 and fa_day <= 0.5 and med <= 3 else "NOT met",
                }
            )
        lines += _md(pd.DataFrame(summary))
        lines += ["", "<details><summary>per series</summary>", ""]
        lines += _md(df.drop(columns=["all_delays", "false_alarm_events", "days"]))
        lines += ["", "</details>", ""]


def failure_section(lines: list[str]) -> None:
    df = predict_detect.nab_failures(SEED)
    caught, total = int(df["caught_at_lead"].sum()), int(df["failures_in_test"].sum())
    fa = df["false_alarm_events"].sum() / df["device_days"].sum() * 100
    lines += [
        "## 4. Failure prediction — goal: recall ≥0.85 at ≥10 min lead, ≤1 false alarm per 100 device-days",
        "",
        "NAB realKnownCause: every labelled anomaly is treated as a failure event; the threshold is fixed on the",
        "first 15 % of each series; a failure is caught when an alarm fires inside its NAB window at least",
        "10 min before the labelled time. Alarm runs outside every window are false alarms.",
        "",
    ]
    lines += _md(df, ".2f")
    lines += [
        "",
        f"Total: recall {caught}/{total} = {caught / max(total, 1):.2f} at ≥10 min lead; {fa:.1f} false alarms per",
        f"100 device-days. Goal: {'met' if caught / max(total, 1) >= 0.85 and fa <= 1 else 'NOT met'}.",
        "No learned predictor on NAB: with 10 labelled failures in 4 unrelated series there is nothing to",
        "train and test a supervised model on honestly.",
        "",
    ]
    twin_section(lines)


def _twin_total(df: pd.DataFrame) -> tuple[int, int, float]:
    fails, caught = int(df["failures"].sum()), int(df["caught_at_lead"].sum())
    return fails, caught, float(df["false_alarm_events"].sum() / df["device_days"].sum() * 100)


def twin_section(lines: list[str]) -> None:
    base = predict_twin.evaluate()
    learned = predict_twin.evaluate_learned()
    lines += [
        "### 4b. Twin PSU-degradation scenarios (src/wattwise/sim)",
        "",
        "Generated 40-server racklet site, 16 rectifier PSUs, 3 simulated days at 60 s per run; in each run 8 PSUs",
        "start degrading at a random time in days 2-3 (random rate) and most fail hours later. Test runs: seeds",
        "1-4 (days 2-3 scored, up to each PSU's failure). Baseline: the per-PSU threshold predictor fitted on that",
        "PSU's day 1. Learned: `LightGbmFailurePredictor` (6 h horizon, alarm at p > 0.5) trained on three other",
        "runs (seeds 101-103) with temperature, ripple, their trends and the gap to the PSU's bus peers.",
        "",
        "Baseline (threshold, level+slope z):",
        "",
    ]
    lines += _md(base, ".1f")
    lines += ["", "Learned (LightGBM fleet model):", ""]
    lines += _md(learned, ".1f")
    lines.append("")
    for label, df in (("threshold", base), ("LightGBM", learned)):
        f, c, fa = _twin_total(df)
        ok = f and c / f >= 0.85 and fa <= 1.0
        lines.append(
            f"- {label}: recall {c}/{f} = {c / max(f, 1):.2f} at ≥10 min lead, {fa:.1f} false alarms per "
            f"100 device-days — goal {'met' if ok else 'NOT met'}."
        )
    lines += [
        "",
        "Why the baseline fails here: when a PSU degrades or dies its bus peers take its load and run hotter,",
        "which a per-unit threshold learned on a quiet day reads as a failure. Caveat: the twin's temperature and",
        "ripple are noise-free, so these figures are an easy case; they show the pipeline, not field accuracy.",
        "",
    ]


HEARTBEAT_HEADING = (
    "## 5. Heartbeat instability in the twin — goal: detection delay median ≤3 s, p99 ≤7 s, "
    "≤1 false alarm per 1 000 node-hours"
)


def heartbeat_section(lines: list[str], plan: predict_heartbeat.Plan | None = None, reports: Path = REPORTS) -> None:
    """Section 5: the heartbeat detector on unstable twin processors (held-out seeds)."""
    t0 = time.perf_counter()
    plan = plan or predict_heartbeat.Plan()
    body = predict_heartbeat.section(plan, reports / "prediction_heartbeat.png")
    lines += [
        HEARTBEAT_HEADING,
        "",
        "`HeartbeatInstabilityDetector` (src/wattwise/predict/heartbeat.py), one per event processor: alarm when",
        "the time since the last beat exceeds the node's normal gap (99.9th percentile of its training gaps) by",
        "more than half its learned beat period, or when lag (or CPU) leaves its training range by a robust z",
        "above max(8, 1.5 × the largest training z). Events are `processor_unstable` windows in the heartbeat",
        "modes (`jitter`, `pause`); the delay runs from the injection to the first alarm (1 s samples, so 1 s",
        "is the shortest possible); an alarm run starting outside every window (or more than",
        f"{plan.grace_s:g} s after its end) is a false alarm. Baseline: 'missed 3 beats' (gap ≥ 3 × configured",
        "period). Detector defaults were written before the first run and not changed after it; no test seed",
        "fits anything. After a first run (4 × 6 h test runs, 0 false alarms in ~2 370 healthy node-hours) the",
        "test runs were lengthened to 8 h so that a 95 % upper bound on the false-alarm rate can fall below 1",
        "per 1 000 node-hours. `bench/predict_heartbeat.py` holds the plan.",
        "",
    ]
    lines += body
    lines += [
        f"Section run time: {time.perf_counter() - t0:.0f} s wall.",
        "",
    ]


def replace_section(report: Path, section: list[str]) -> None:
    """Put ``section`` (starting with its ``## N.`` heading) into ``report`` in place of the old section N."""
    old = report.read_text().splitlines() if report.exists() else []
    key = " ".join(section[0].split()[:2]) + " "
    starts = [i for i, line in enumerate(old) if line.startswith(key)]
    if not starts:
        new = old + ([""] if old and old[-1] else []) + section
    else:
        a = starts[0]
        b = next((i for i in range(a + 1, len(old)) if old[i].startswith("## ")), len(old))
        new = old[:a] + section + old[b:]
    report.write_text("\n".join(new).rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["heartbeat", "power"], help="rewrite only this section of the report")
    args = parser.parse_args()
    if args.only is not None:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        section: list[str] = []
        {"heartbeat": heartbeat_section, "power": power_section}[args.only](section)
        replace_section(REPORTS / "prediction.md", section)
        print("\n".join(section))
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    REPORTS.mkdir(parents=True, exist_ok=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    lines = ["# Prediction backtest", "", "Produced by `.venv/bin/python bench/backtest.py` (seed 0).", ""]
    sections = [
        ("demand", demand_section),
        ("power", power_section),
        ("detect", detect_section),
        ("failure", failure_section),
        ("heartbeat", heartbeat_section),
    ]
    timings = []
    for name, fn in sections:
        ts = time.perf_counter()
        fn(lines)
        timings.append(f"{name} {time.perf_counter() - ts:.0f} s")
        print(f"{name}: done in {time.perf_counter() - ts:.1f} s", flush=True)
    total = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    load = os.getloadavg()[0]
    lines.insert(
        3,
        f"Run time: {total:.0f} s wall, {cpu:.0f} s CPU of this process ({', '.join(timings)}); "
        f"{os.cpu_count()} cores, load average {load:.1f} at the end.",
    )
    (REPORTS / "prediction.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {REPORTS / 'prediction.md'} in {total:.1f} s")


if __name__ == "__main__":
    main()
