"""Instability (SMD, NAB AWS) and failure-prediction (NAB known cause) evaluations."""

from __future__ import annotations

import numpy as np
import pandas as pd

from predict_data import nab_series, smd_machines
from wattwise.predict.base import Frame, InstabilityDetector
from wattwise.predict.detect import PcaInstabilityDetector, RobustZScoreDetector
from wattwise.predict.events import lead_scores, segment_scores
from wattwise.predict.failure import ThresholdFailurePredictor

NAB_TRAIN_FRAC = 0.15  # NAB's own "probationary" head: the only data thresholds may see


def detectors(seed: int) -> dict[str, InstabilityDetector]:
    """The detectors compared; thresholds are fixed on each training range."""
    return {"robust z-score": RobustZScoreDetector(seed=seed), "PCA residual": PcaInstabilityDetector(seed=seed)}


def smd(seed: int) -> pd.DataFrame:
    """Event recall, false alarms/day, delay and point-wise F1 per SMD machine and detector."""
    rows = []
    for m in smd_machines():
        for name, det in detectors(seed).items():
            det.fit(m.train)
            out = det.score(m.test)
            sc = segment_scores(out.alarm, m.label.astype(bool), sample_s=60.0)
            rows.append(_row(m.name, name, sc))
    return pd.DataFrame(rows)


def _row(series: str, name: str, sc: object) -> dict[str, object]:
    from wattwise.predict.events import SegmentScores

    assert isinstance(sc, SegmentScores)
    return {
        "series": series,
        "detector": name,
        "events": sc.n_events,
        "detected": sc.detected,
        "event_recall": sc.detected / sc.n_events if sc.n_events else float("nan"),
        "false_alarms_per_day": sc.false_alarms_per_day,
        "median_delay_samples": float(np.median(sc.delays_samples)) if sc.delays_samples else float("nan"),
        "point_f1": sc.point_f1,
        "days": sc.days,
        "false_alarm_events": sc.false_alarm_events,
        "all_delays": sc.delays_samples,
    }


def nab_aws(seed: int) -> pd.DataFrame:
    """The same detectors on the 17 NAB AWS CloudWatch series (windows as anomaly segments)."""
    rows = []
    for ns in nab_series("realAWSCloudwatch"):
        s = ns.series
        cut = int(NAB_TRAIN_FRAC * len(s))
        label = np.zeros(len(s) - cut, dtype=bool)
        t_test = s.t_s[cut:]
        for a, b in ns.windows_s:
            label |= (t_test >= a) & (t_test <= b)
        for name, det in list(detectors(seed).items())[:1]:  # univariate: PCA does not apply
            det.fit(Frame(s.t_s[:cut], s.value[:cut], ("value",)))
            out = det.score(Frame(t_test, s.value[cut:], ("value",)))
            rows.append(_row(ns.name, name, segment_scores(out.alarm, label, sample_s=s.step_s)))
    return pd.DataFrame(rows)


def nab_failures(seed: int, min_lead_s: float = 600.0) -> pd.DataFrame:
    """Recall at ≥ ``min_lead_s`` lead and false alarms/device-day on NAB known-cause failures."""
    rows = []
    for ns in nab_series("realKnownCause"):
        s = ns.series
        cut = int(NAB_TRAIN_FRAC * len(s))
        pred = ThresholdFailurePredictor(seed=seed)
        pred.fit(Frame(s.t_s[:cut], s.value[:cut], ("value",)))
        risk = pred.predict(Frame(s.t_s[cut:], s.value[cut:], ("value",)), horizon_s=3600.0)
        failures = [f for f in ns.labels_s if f >= s.t_s[cut]]
        sc = lead_scores(s.t_s[cut:], risk.alarm, ns.windows_s, failures, min_lead_s)
        rows.append(
            {
                "series": ns.name,
                "predictor": "threshold (level+slope z)",
                "failures_in_test": sc.n_failures,
                "failures_in_train": len(ns.labels_s) - len(failures),
                "caught_at_lead": sc.caught,
                "leads_h": ", ".join(f"{x / 3600:.1f}" for x in sc.leads_s),
                "false_alarm_events": sc.false_alarm_events,
                "device_days": sc.days,
            }
        )
    return pd.DataFrame(rows)
