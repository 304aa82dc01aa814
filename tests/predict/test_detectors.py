"""Conformance of every InstabilityDetector and FailurePredictor, plus event scoring."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from wattwise.errors import PredictionError
from wattwise.predict.base import FailurePredictor, Frame, InstabilityDetector
from wattwise.predict.detect import PcaInstabilityDetector, RobustZScoreDetector
from wattwise.predict.events import lead_scores, runs, segment_scores
from wattwise.predict.failure import ThresholdFailurePredictor

DETECTORS: dict[str, Callable[[int], InstabilityDetector]] = {
    "robust_z": lambda seed: RobustZScoreDetector(seed=seed),
    "pca": lambda seed: PcaInstabilityDetector(seed=seed),
}
SIGNALS = ("cpu_frac", "mem_frac", "net_frac", "load_frac")


def _frame(n: int, seed: int, start: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 1.0, (n, 1))
    values = np.hstack([base + rng.normal(0, 0.2, (n, 1)) for _ in SIGNALS])
    return Frame(60.0 * (start + np.arange(n)), values, SIGNALS)


@pytest.fixture(params=sorted(DETECTORS))
def make(request: pytest.FixtureRequest) -> Callable[[int], InstabilityDetector]:
    return DETECTORS[request.param]


def test_is_a_detector(make: Callable[[int], InstabilityDetector]) -> None:
    assert isinstance(make(0), InstabilityDetector)


def test_detector_is_deterministic_causal_and_finite(make: Callable[[int], InstabilityDetector]) -> None:
    train, test = _frame(3000, 1), _frame(500, 2, start=3000)
    a, b = make(0), make(0)
    a.fit(train)
    b.fit(train)
    sa, sb = a.score(test), b.score(test)
    np.testing.assert_array_equal(sa.score, sb.score)
    assert np.all(np.isfinite(sa.score))
    assert np.all((sa.failure_prob_frac >= 0) & (sa.failure_prob_frac <= 1))
    changed = test.values.copy()
    changed[300:, 1] += 50.0  # one signal breaks away from the others
    sc = a.score(Frame(test.t_s, changed, SIGNALS))
    np.testing.assert_array_equal(sc.score[:300], sa.score[:300])  # the future changes nothing before it
    assert sc.alarm[305:].all()
    assert len(sc.top_signals) == len(test)


def test_threshold_is_fixed_by_training_only(make: Callable[[int], InstabilityDetector]) -> None:
    d = make(0)
    d.fit(_frame(3000, 1))
    thr = d.score(_frame(100, 2)).threshold
    d.score(Frame(60.0 * np.arange(100), np.full((100, 4), 99.0), SIGNALS))
    assert d.score(_frame(100, 2)).threshold == thr


def test_detector_inputs_not_mutated_and_nan_handled(make: Callable[[int], InstabilityDetector]) -> None:
    train = _frame(3000, 1)
    values = _frame(200, 3).values.copy()
    values[50:60, 1] = np.nan
    before = values.copy()
    d = make(0)
    d.fit(train)
    out = d.score(Frame(60.0 * np.arange(200), values, SIGNALS))
    np.testing.assert_array_equal(values, before)
    assert np.all(np.isfinite(out.score))


def test_detector_bad_input(make: Callable[[int], InstabilityDetector]) -> None:
    d = make(0)
    with pytest.raises(PredictionError, match="not fitted"):
        d.score(_frame(10, 1))
    with pytest.raises(PredictionError, match="too short"):
        d.fit(_frame(3, 1))
    d.fit(_frame(500, 1))
    with pytest.raises(PredictionError, match="signals"):
        d.score(Frame(np.arange(5.0), np.zeros((5, 2)), ("a", "b")))
    with pytest.raises(PredictionError, match="inf"):
        d.score(Frame(np.arange(5.0), np.full((5, 4), np.inf), SIGNALS))


def test_pca_needs_several_signals() -> None:
    with pytest.raises(PredictionError, match="2 signals"):
        PcaInstabilityDetector().fit(Frame(np.arange(50.0), np.arange(50.0), ("x",)))


def test_failure_predictor_contract() -> None:
    p = ThresholdFailurePredictor()
    assert isinstance(p, FailurePredictor)
    rng = np.random.default_rng(4)
    train = Frame(300.0 * np.arange(2000), 70 + rng.normal(0, 1, 2000), ("temp_c",))
    p.fit(train)
    test_v = 70 + rng.normal(0, 1, 300)
    test_v[200:] -= np.linspace(0, 30, 100)  # a failing cooler: temperature collapses
    risk = p.predict(Frame(300.0 * np.arange(2000, 2300), test_v, ("temp_c",)), horizon_s=3600.0)
    assert risk.horizon_s == 3600.0
    assert risk.alarm[260:].all()
    assert risk.failure_prob_frac[-1] > 0.5 > risk.failure_prob_frac[:150].max()
    assert risk.top_signals[0].startswith("temp_c")
    with pytest.raises(PredictionError, match="too short"):
        ThresholdFailurePredictor().fit(Frame(np.arange(5.0), np.zeros(5), ("x",)))
    with pytest.raises(PredictionError, match="not fitted"):
        ThresholdFailurePredictor().predict(train, 60.0)


def test_runs_and_segment_scores() -> None:
    assert runs(np.array([0, 1, 1, 0, 0, 1], dtype=bool)) == [(1, 2), (5, 5)]
    assert runs(np.array([0, 1, 1, 0, 0, 1], dtype=bool), merge_gap=2) == [(1, 5)]
    label = np.zeros(1440, dtype=bool)
    label[100:110] = True
    label[500:520] = True
    alarm = np.zeros(1440, dtype=bool)
    alarm[102:104] = True  # detected with delay 2
    alarm[900] = True  # false alarm
    s = segment_scores(alarm, label, sample_s=60.0)
    assert (s.n_events, s.detected, s.delays_samples, s.false_alarm_events) == (2, 1, (2,), 1)
    assert s.false_alarms_per_day == pytest.approx(1.0)
    assert s.point_precision == pytest.approx(2 / 3)
    assert s.point_recall == pytest.approx(2 / 30)


def test_lead_scores_require_the_lead() -> None:
    t = 60.0 * np.arange(1000)
    alarm = np.zeros(1000, dtype=bool)
    alarm[495] = True  # 5 min before the failure at t[500]
    sc = lead_scores(t, alarm, [(t[400], t[600])], [t[500]], min_lead_s=600.0)
    assert sc.caught == 0
    alarm[480] = True  # 20 min before
    sc = lead_scores(t, alarm, [(t[400], t[600])], [t[500]], min_lead_s=600.0)
    assert sc.caught == 1 and sc.leads_s == (1200.0,)
    assert sc.false_alarm_events == 0


def _fleet(seed: int, n_dev: int = 8) -> tuple[list[Frame], list[float | None]]:
    """Devices whose temperature ramps up for 3 h before a failure; half never fail."""
    rng = np.random.default_rng(seed)
    t = 60.0 * np.arange(2000)
    frames, fails = [], []
    for d in range(n_dev):
        temp = 40 + rng.normal(0, 0.5, t.shape[0])
        fail = None
        if d % 2 == 0:
            at = int(rng.integers(1000, 1900))
            temp[at - 180 : at] += np.linspace(0, 15, 180)
            fail = float(t[at])
        frames.append(Frame(t, temp, ("temp_c",)))
        fails.append(fail)
    return frames, fails


def test_lightgbm_failure_predictor_learns_on_one_fleet_and_generalises() -> None:
    from wattwise.predict.failure import LightGbmFailurePredictor

    p = LightGbmFailurePredictor(horizon_s=3 * 3600.0, n_estimators=60, num_threads=1, seed=1)
    assert isinstance(p, FailurePredictor)
    with pytest.raises(PredictionError, match="labelled"):
        p.fit(_fleet(0)[0][0])
    p.fit_fleet(*_fleet(0, n_dev=24))
    caught = false = 0
    for frame, fail in zip(*_fleet(99), strict=True):  # another fleet: held out
        keep = frame.t_s < fail if fail is not None else np.ones(len(frame), dtype=bool)
        risk = p.predict(Frame(frame.t_s[keep], frame.values[keep], frame.signals), horizon_s=3 * 3600.0)
        assert np.all((risk.failure_prob_frac >= 0) & (risk.failure_prob_frac <= 1))
        if fail is None:
            false += len(runs(risk.alarm, 5))
        else:
            caught += int(risk.alarm[-120:-10].any())  # at least 10 min ahead
    assert caught == 4
    assert false == 0
    with pytest.raises(PredictionError, match="horizon"):
        p.predict(_fleet(0)[0][0], horizon_s=60.0)


def test_lightgbm_failure_predictor_is_deterministic() -> None:
    from wattwise.predict.failure import LightGbmFailurePredictor

    probs = []
    for _ in range(2):
        p = LightGbmFailurePredictor(horizon_s=3 * 3600.0, n_estimators=30, num_threads=1, seed=4)
        p.fit_fleet(*_fleet(0))
        probs.append(p.predict(_fleet(5)[0][0], horizon_s=3 * 3600.0).failure_prob_frac)
    np.testing.assert_array_equal(probs[0], probs[1])
