"""HeartbeatInstabilityDetector: the detector conformance suite, learned limits, split, bad input."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from tests.bench.loader import load_bench
from tests.predict import test_detectors as suite

from wattwise.errors import PredictionError
from wattwise.predict.base import Frame, InstabilityDetector
from wattwise.predict.heartbeat import HeartbeatInstabilityDetector, beat_period_s

HB = ("heartbeat_gap_s", "lag_s")


def _conformant(seed: int) -> InstabilityDetector:
    """The detector on the suite's frames: its first signal read as the gap, the others as aux."""
    return HeartbeatInstabilityDetector(
        gap_signal=suite.SIGNALS[0], aux_signals=suite.SIGNALS[1:], min_train_samples=10, seed=seed
    )


CONFORMANCE: list[Callable[[Callable[[int], InstabilityDetector]], None]] = [
    suite.test_is_a_detector,
    suite.test_detector_is_deterministic_causal_and_finite,
    suite.test_threshold_is_fixed_by_training_only,
    suite.test_detector_inputs_not_mutated_and_nan_handled,
    suite.test_detector_bad_input,
]


@pytest.mark.parametrize("check", CONFORMANCE, ids=lambda f: f.__name__)
def test_conformance_suite_of_every_detector(check: Callable[[Callable[[int], InstabilityDetector]], None]) -> None:
    check(_conformant)


def _beats(n: int, period: int, start: int = 0, lag_s: float = 0.0) -> Frame:
    """A node sampled every second that beats every ``period`` seconds (gap 0, 1, ..., period-1)."""
    t = np.arange(start, start + n, dtype=np.float64)
    gap = t % period
    return Frame(t, np.column_stack([gap, np.full(n, lag_s)]), HB)


def test_period_and_gap_limit_are_learned_per_node() -> None:
    fast, slow = HeartbeatInstabilityDetector(), HeartbeatInstabilityDetector()
    fast.fit(_beats(600, 1))
    slow.fit(_beats(600, 2))
    assert (fast.period_s, fast.gap_limit_s) == (1.0, 0.5)  # first missed beat alarms
    assert (slow.period_s, slow.gap_limit_s) == (2.0, 2.0)  # normal gap 1 s + half a period
    test = Frame(np.arange(600.0, 606.0), np.column_stack([[0, 1, 2, 3, 0, 1], np.zeros(6)]), HB)
    assert fast.score(test).alarm.tolist() == [False, True, True, True, False, True]
    assert slow.score(test).alarm.tolist() == [False, False, False, True, False, False]
    assert fast.score(test).top_signals[1] == "heartbeat_gap_s"


def test_a_jittery_node_gets_a_wider_limit_from_its_own_training() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(3000.0)
    gap = np.zeros(3000)
    late = rng.random(3000) < 0.2  # one beat in five comes a second or two late
    gap[late] = rng.integers(1, 3, int(late.sum()))
    det = HeartbeatInstabilityDetector()
    det.fit(Frame(t, np.column_stack([gap, np.zeros(3000)]), HB))
    assert det.gap_limit_s == pytest.approx(2.5)
    out = det.score(Frame(3000.0 + np.arange(4.0), np.column_stack([[2.0, 0, 3.0, 4.0], np.zeros(4)]), HB))
    assert out.alarm.tolist() == [False, False, True, True]


def test_lag_alarms_when_it_leaves_its_training_range() -> None:
    det = HeartbeatInstabilityDetector()
    det.fit(_beats(600, 1))
    lag = np.array([0.0, 0.5, 0.9, 5.0])
    out = det.score(Frame(600.0 + np.arange(4.0), np.column_stack([np.zeros(4), lag]), HB))
    assert out.alarm.tolist() == [False, False, True, True]  # scale floor 0.1 s, limit z 8
    assert out.top_signals[-1] == "lag_s"
    assert np.all((out.failure_prob_frac >= 0) & (out.failure_prob_frac <= 1))
    assert out.failure_prob_frac[-1] > 0.5 > out.failure_prob_frac[0]


def test_limits_come_from_training_only_and_scoring_does_not_move_them() -> None:
    det = HeartbeatInstabilityDetector()
    det.fit(_beats(600, 2))
    before = (det.period_s, det.gap_limit_s)
    det.score(Frame(np.arange(100.0), np.full((100, 2), 500.0), HB))
    assert (det.period_s, det.gap_limit_s) == before
    other = HeartbeatInstabilityDetector()
    other.fit(_beats(600, 2, start=10_000))  # another range of the same behaviour
    assert (other.period_s, other.gap_limit_s) == before


def test_same_seed_same_scores() -> None:
    rng = np.random.default_rng(9)
    train = Frame(np.arange(900.0), np.column_stack([np.arange(900.0) % 3, rng.exponential(1, 900)]), HB)
    test = Frame(900.0 + np.arange(300.0), np.column_stack([rng.integers(0, 6, 300), rng.exponential(1, 300)]), HB)
    a, b = HeartbeatInstabilityDetector(seed=5), HeartbeatInstabilityDetector(seed=5)
    a.fit(train)
    b.fit(train)
    sa, sb = a.score(test), b.score(test)
    np.testing.assert_array_equal(sa.score, sb.score)
    np.testing.assert_array_equal(sa.alarm, sb.alarm)
    assert sa.top_signals == sb.top_signals


def test_nan_runs_in_the_gap_count_as_no_beat_seen() -> None:
    det = HeartbeatInstabilityDetector()
    det.fit(_beats(600, 1))
    gap = np.zeros(20)
    gap[5:15] = np.nan  # ten samples lost
    lag = np.zeros(20)
    lag[:3] = np.nan  # leading NaN: the training median
    out = det.score(Frame(600.0 + np.arange(20.0), np.column_stack([gap, lag]), HB))
    assert np.all(np.isfinite(out.score))
    assert not out.alarm[:5].any()
    assert out.alarm[5:15].all()  # the gap keeps growing from the last sample seen
    assert not out.alarm[15:].any()


def test_irregular_sampling_and_negative_gaps() -> None:
    t = np.concatenate([np.arange(300.0), 400.0 + np.arange(300.0)])  # 100 s without samples
    det = HeartbeatInstabilityDetector()
    det.fit(Frame(t, np.column_stack([np.zeros(600), np.zeros(600)]), HB))
    assert det.period_s == 1.0
    out = det.score(Frame(np.array([1000.0, 1001.0, 1005.0]), np.column_stack([[-3.0, 0.0, np.nan], np.zeros(3)]), HB))
    assert out.alarm.tolist() == [False, False, True]  # clock skew reads as 0; 4 s unseen reads as a 4 s gap
    assert out.score[2] == pytest.approx(4.0 / 0.5)


def test_constant_series_fit_with_floors() -> None:
    det = HeartbeatInstabilityDetector(aux_signals=("lag_s",))
    det.fit(Frame(np.arange(100.0), np.column_stack([np.zeros(100), np.full(100, 7.0)]), HB))
    out = det.score(Frame(np.arange(100.0, 103.0), np.column_stack([np.zeros(3), [7.0, 7.5, 8.0]]), HB))
    assert out.alarm.tolist() == [False, False, True]  # |8 - 7| / 0.1 = z 10 > 8


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (_beats(30, 1), "too short"),
        (Frame(np.arange(100.0), np.zeros(100), ("heartbeat_gap_s",)), "missing"),
        (Frame(np.arange(100.0), np.column_stack([np.arange(100.0), np.zeros(100)]), HB), "no heartbeat"),
        (Frame(np.arange(100.0), np.column_stack([np.full(100, np.nan), np.zeros(100)]), HB), "every heartbeat_gap_s"),
        (Frame(np.arange(100.0), np.column_stack([np.zeros(100), np.full(100, np.nan)]), HB), "every lag_s"),
        (Frame(np.arange(100.0), np.column_stack([np.zeros(100), np.full(100, np.inf)]), HB), "inf"),
    ],
    ids=["too-short", "missing-signal", "never-beats", "gap-all-nan", "aux-all-nan", "inf"],
)
def test_bad_training_input_raises_a_prediction_error(frame: Frame, match: str) -> None:
    with pytest.raises(PredictionError, match=match):
        HeartbeatInstabilityDetector().fit(frame)


def test_bad_scoring_input_raises_a_prediction_error() -> None:
    det = HeartbeatInstabilityDetector()
    with pytest.raises(PredictionError, match="not fitted"):
        det.score(_beats(10, 1))
    det.fit(_beats(600, 1))
    with pytest.raises(PredictionError, match="differ"):
        det.score(Frame(np.arange(3.0), np.zeros((3, 2)), ("heartbeat_gap_s", "cpu_frac")))
    with pytest.raises(PredictionError, match="too short"):
        beat_period_s(np.arange(2.0), np.zeros(2))


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("predict_heartbeat.py", "wattwise_bench_predict_heartbeat")


def test_bench_thresholds_are_fitted_on_training_runs_only(bench: ModuleType) -> None:
    res = bench.evaluate(bench.quick_plan())
    train_seeds, test_seeds = {r.seed for r in res.train}, {r.seed for r in res.test}
    assert train_seeds == set(res.plan.train_seeds)
    assert test_seeds == set(res.plan.test_seeds)
    assert train_seeds.isdisjoint(test_seeds)
    assert all(not r.windows for r in res.train)  # training runs have no injected instability
    assert all(r.windows for r in res.test)
    n = res.train[0].values.shape[1]
    for method, dets in res.fitted.items():
        again = bench.fit_detectors(res.train, method, n)  # the training runs alone give the same limits
        assert [d.gap_limit_s for d in dets] == [d.gap_limit_s for d in again]
        np.testing.assert_array_equal(
            np.concatenate([d._aux_limit for d in dets]), np.concatenate([d._aux_limit for d in again])
        )
    # The concatenated training frame covers only training runs, and its times never go back.
    frame = bench.training_frame(res.train, 0)
    assert len(frame) == sum(len(r.t_s) for r in res.train)
    assert np.all(np.diff(frame.t_s) > 0)
