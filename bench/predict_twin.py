"""Failure prediction on twin PSU-degradation scenarios (src/wattwise/sim, the digital twin).

Each run simulates a generated 40-server racklet site for 3 days at 60 s steps. Half of the
16 rectifier PSUs start degrading at a random time in day 2-3 at a random rate (failing some
hours later); the others stay healthy. Per PSU, the predictor is fitted on day 1 (all
healthy) from its temperature and output ripple, then scored on days 2-3 up to its failure:
a failure is caught when an alarm fires between degradation start and 10 min before the
failure; alarm runs on healthy stretches are false alarms.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from wattwise.predict.base import Frame
from wattwise.predict.events import lead_scores
from wattwise.predict.failure import ThresholdFailurePredictor
from wattwise.sim.runner import build_twin, run_scenario
from wattwise.sim.scenario import parse_scenario
from wattwise.sim.twin import Twin

DAY_S = 86_400.0
SITE = {"servers": 40, "servers_per_rack": 10, "racks_per_hall": 2}


@dataclass(frozen=True)
class TwinRun:
    """Per-PSU temperature/ripple samples, failure flags, and degradation start times."""

    t_s: np.ndarray
    temp_c: np.ndarray
    ripple_v: np.ndarray
    failed: np.ndarray
    degrade_start_s: dict[int, float]


@lru_cache(maxsize=16)
def simulate(seed: int) -> TwinRun:
    """One 3-day run with seeded degradation events."""
    probe = build_twin(parse_scenario({"name": "probe", "generate": SITE, "duration_s": 60, "step_s": 60}))
    psu_ids = probe.ids["psu"]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(psu_ids), len(psu_ids) // 2, replace=False)
    starts = {int(i): float(rng.uniform(1.05, 2.5) * DAY_S) for i in chosen}
    events = [
        {"at_s": starts[i], "kind": "psu_degrade", "target": psu_ids[i], "rate_per_s": float(rng.uniform(1.5e-5, 5e-5))}
        for i in starts
    ]
    sc = parse_scenario(
        {
            "name": f"psu-degradation-{seed}",
            "seed": seed,
            "generate": SITE,
            "duration_s": 3 * DAY_S,
            "step_s": 60,
            "events": events,
        }
    )
    twin = build_twin(sc, record_timeline=False)
    rec: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []

    def hook(tw: Twin, t_s: float) -> None:
        temp, ripple = tw.psu_condition()
        rec.append((t_s, temp.copy(), ripple.copy(), tw.psu.failed.copy()))

    run_scenario(sc, hook, hook_every_s=60.0, twin=twin)
    return TwinRun(
        t_s=np.array([r[0] for r in rec]),
        temp_c=np.stack([r[1] for r in rec]),
        ripple_v=np.stack([r[2] for r in rec]),
        failed=np.stack([r[3] for r in rec]),
        degrade_start_s={i: twin.t_s - 3 * DAY_S + s for i, s in starts.items()},
    )


def evaluate(seeds: tuple[int, ...] = (1, 2, 3, 4), min_lead_s: float = 600.0) -> pd.DataFrame:
    """Recall at ≥ ``min_lead_s`` lead and false alarms per device-day, per run."""
    rows = []
    for seed in seeds:
        run = simulate(seed)
        t = run.t_s
        train = t < t[0] + DAY_S
        n_fail = caught = false = 0
        device_days = 0.0
        leads = []
        for i in range(run.temp_c.shape[1]):
            values = np.column_stack([run.temp_c[:, i], run.ripple_v[:, i]])
            pred = ThresholdFailurePredictor(seed=seed)
            pred.fit(Frame(t[train], values[train], ("temp_c", "ripple_v")))
            dead = np.flatnonzero(run.failed[:, i])
            end = int(dead[0]) if dead.size else len(t)  # after the failure the unit is dead, not "alarming"
            test = ~train & (np.arange(len(t)) < end)
            risk = pred.predict(Frame(t[test], values[test], ("temp_c", "ripple_v")), horizon_s=3600.0)
            start = run.degrade_start_s.get(i)
            windows = [(start, float(t[min(end, len(t) - 1)]))] if start is not None else []
            failures = [float(t[end])] if dead.size else []
            sc = lead_scores(t[test], risk.alarm, windows, failures, min_lead_s)
            n_fail += sc.n_failures
            caught += sc.caught
            false += sc.false_alarm_events
            device_days += sc.days
            leads += list(sc.leads_s)
        rows.append(
            {
                "seed": seed,
                "psus": run.temp_c.shape[1],
                "failures": n_fail,
                "caught_at_lead": caught,
                "median_lead_min": float(np.median(leads) / 60) if leads else float("nan"),
                "false_alarm_events": false,
                "device_days": device_days,
            }
        )
    return pd.DataFrame(rows)


def _frames(run: TwinRun, bus: np.ndarray) -> tuple[list[Frame], list[float | None]]:
    """Per-PSU frames (own temperature/ripple and the gap to the median of its bus peers)."""
    frames, failures = [], []
    for i in range(run.temp_c.shape[1]):
        peers = [j for j in range(run.temp_c.shape[1]) if bus[j] == bus[i] and j != i]
        peer_t = np.median(run.temp_c[:, peers], axis=1) if peers else run.temp_c[:, i]
        peer_r = np.median(run.ripple_v[:, peers], axis=1) if peers else run.ripple_v[:, i]
        values = np.column_stack(
            [
                run.temp_c[:, i],
                run.ripple_v[:, i],
                run.temp_c[:, i] - peer_t,
                run.ripple_v[:, i] - peer_r,
            ]
        )
        frames.append(Frame(run.t_s, values, ("temp_c", "ripple_v", "temp_minus_peers_c", "ripple_minus_peers_v")))
        dead = np.flatnonzero(run.failed[:, i])
        failures.append(float(run.t_s[dead[0]]) if dead.size else None)
    return frames, failures


def psu_bus() -> np.ndarray:
    """DC bus of every PSU of the generated site."""
    probe = build_twin(parse_scenario({"name": "probe", "generate": SITE, "duration_s": 60, "step_s": 60}))
    return np.asarray(probe.psu.bus)


def evaluate_learned(
    train_seeds: tuple[int, ...] = (101, 102, 103),
    test_seeds: tuple[int, ...] = (1, 2, 3, 4),
    min_lead_s: float = 600.0,
) -> pd.DataFrame:
    """LightGBM fleet predictor trained on other seeds' runs (days 1-3), scored on the test seeds' days 2-3."""
    from wattwise.predict.failure import LightGbmFailurePredictor

    bus = psu_bus()
    frames, failures = [], []
    for seed in train_seeds:
        f, fl = _frames(simulate(seed), bus)
        frames += f
        failures += fl
    pred = LightGbmFailurePredictor(seed=0)
    pred.fit_fleet(frames, failures)
    rows = []
    for seed in test_seeds:
        run = simulate(seed)
        fr, fl = _frames(run, bus)
        t = run.t_s
        stats = {"failures": 0, "caught": 0, "false": 0, "days": 0.0}
        leads: list[float] = []
        for i, (frame, fail) in enumerate(zip(fr, fl, strict=True)):
            end = int(np.searchsorted(t, fail)) if fail is not None else len(t)
            test = (t >= t[0] + DAY_S) & (np.arange(len(t)) < end)
            risk = pred.predict(Frame(t[test], frame.values[test], frame.signals), horizon_s=pred.horizon_s)
            start = run.degrade_start_s.get(i)
            windows = [(start, float(t[min(end, len(t) - 1)]))] if start is not None else []
            sc = lead_scores(t[test], risk.alarm, windows, [fail] if fail is not None else [], min_lead_s)
            stats["failures"] += sc.n_failures
            stats["caught"] += sc.caught
            stats["false"] += sc.false_alarm_events
            stats["days"] += sc.days
            leads += list(sc.leads_s)
        rows.append(
            {
                "seed": seed,
                "psus": len(fr),
                "failures": stats["failures"],
                "caught_at_lead": stats["caught"],
                "median_lead_min": float(np.median(leads) / 60) if leads else float("nan"),
                "false_alarm_events": stats["false"],
                "device_days": stats["days"],
            }
        )
    return pd.DataFrame(rows)
