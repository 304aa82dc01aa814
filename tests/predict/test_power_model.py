"""Power model: held-out SPECpower servers, physical sanity, bad input, residual terms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wattwise.errors import PredictionError
from wattwise.predict.power_model import KNOTS_FRAC, LinearPowerModel, SpecPowerModel, interior_mape_pct


def _curves(datasets_dir: Path) -> np.ndarray:
    import pandas as pd

    df = pd.read_csv(datasets_dir / "specpower_ssj2008" / "power_curves_11pt.csv")
    cols = ["watts_active_idle"] + [f"watts_{p}pct" for p in range(10, 101, 10)]
    return df[cols].to_numpy(np.float64)


def test_held_out_servers_beat_the_linear_baseline(datasets_dir: Path) -> None:
    curves = _curves(datasets_dir)
    train, test = curves[::2], curves[1::2]  # fitted on half the servers, judged on the others
    model = SpecPowerModel()
    model.fit_curves(train)
    err_model, err_lin = [], []
    for c in test:
        for m, out in ((model, err_model), (LinearPowerModel(), err_lin)):
            pred = m.predict_w(KNOTS_FRAC, idle_w=c[0], peak_w=c[-1])
            out.append(np.mean(np.abs(pred[1:10] - c[1:10]) / c[1:10]))
    assert np.mean(err_model) < np.mean(err_lin)


def test_power_is_monotone_and_pinned_at_idle_and_peak() -> None:
    m = SpecPowerModel()
    m.fit_curves(
        np.array([[50.0, 80, 95, 105, 115, 125, 140, 160, 190, 220, 240], [100.0, *np.linspace(110, 200, 10)]])
    )
    u = np.linspace(0, 1, 101)
    p = m.predict_w(u, idle_w=60.0, peak_w=300.0)
    assert p[0] == pytest.approx(60.0) and p[-1] == pytest.approx(300.0)
    assert np.all(np.diff(p) >= 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cpu_frac": np.array([1.2])}, "fraction"),
        ({"cpu_frac": np.array([np.nan])}, "NaN"),
        ({"cpu_frac": np.array([0.5]), "mem_frac": np.array([-0.5])}, "fraction"),
        ({"cpu_frac": np.array([0.5]), "ambient_c": np.array([np.inf])}, "ambient"),
    ],
)
def test_bad_inputs_raise(kwargs: dict[str, np.ndarray], match: str) -> None:
    with pytest.raises(PredictionError, match=match):
        SpecPowerModel().predict_w(idle_w=50.0, peak_w=200.0, **kwargs)


def test_bad_curves_and_datasheet_raise() -> None:
    with pytest.raises(PredictionError, match="rise"):
        SpecPowerModel().fit_curves(np.full((2, 11), 100.0))
    with pytest.raises(PredictionError, match="shape"):
        SpecPowerModel().fit_curves(np.ones((2, 5)))
    with pytest.raises(PredictionError, match="idle_w"):
        SpecPowerModel().predict_w(np.array([0.5]), idle_w=300.0, peak_w=200.0)
    with pytest.raises(PredictionError, match="shape"):
        SpecPowerModel(shape="cubic")


def test_residual_terms_are_recovered_from_measurements() -> None:
    rng = np.random.default_rng(5)
    n = 400
    cpu, mem, net, sto = (rng.uniform(0, 1, n) for _ in range(4))
    amb = rng.uniform(18, 35, n)
    truth = SpecPowerModel()
    truth.coef_w = np.array([30.0, 8.0, 12.0, 2.5])
    measured = truth.predict_w(cpu, idle_w=80, peak_w=300, mem_frac=mem, net_frac=net, storage_frac=sto, ambient_c=amb)
    m = SpecPowerModel()
    m.fit_residual(
        measured + rng.normal(0, 1.0, n),
        cpu,
        idle_w=80,
        peak_w=300,
        mem_frac=mem,
        net_frac=net,
        storage_frac=sto,
        ambient_c=amb,
    )
    np.testing.assert_allclose(m.coef_w, truth.coef_w, rtol=0.1)


def _fixed_loo_mape_pct(curves: np.ndarray, shape: str, bandwidth_frac: float) -> float:
    errs = []
    for j in range(len(curves)):
        m = SpecPowerModel(shape=shape, bandwidth_frac=bandwidth_frac)
        m.fit_curves(np.delete(curves, j, axis=0))
        pred = m.predict_w(KNOTS_FRAC, idle_w=curves[j, 0], peak_w=curves[j, -1])
        errs.append(interior_mape_pct(pred, curves[j]))
    return float(np.mean(errs))


def test_auto_chooses_by_leave_one_out_on_its_fit_curves_only(datasets_dir: Path) -> None:
    fit = _curves(datasets_dir)[:12]  # the other 13 servers play no part
    m = SpecPowerModel()
    m.fit_curves(fit)
    expected = {
        (f"neighbours@{b:g}" if s == "neighbours" else s): _fixed_loo_mape_pct(fit, s, b) for s, b in m.candidates()
    }
    assert m.selection_mape_pct == pytest.approx(expected)
    best = min(expected, key=lambda k: expected[k])
    chosen = f"neighbours@{m.selected_bandwidth_frac:g}" if m.selected_shape == "neighbours" else m.selected_shape
    assert chosen == best
    fixed = SpecPowerModel(shape=m.selected_shape, bandwidth_frac=m.selected_bandwidth_frac)
    fixed.fit_curves(fit)  # after choosing, the chosen shape is fitted on all the given curves
    for c in _curves(datasets_dir)[12:]:
        np.testing.assert_array_equal(m.shape_frac(c[0], c[-1]), fixed.shape_frac(c[0], c[-1]))


def test_auto_fit_is_deterministic_and_does_not_mutate_its_input(datasets_dir: Path) -> None:
    curves = _curves(datasets_dir)
    before = curves.copy()
    a, b = SpecPowerModel(), SpecPowerModel(seed=7)
    a.fit_curves(curves)
    b.fit_curves(curves)
    np.testing.assert_array_equal(curves, before)
    assert a.selection_mape_pct == b.selection_mape_pct
    assert (a.selected_shape, a.selected_bandwidth_frac) == (b.selected_shape, b.selected_bandwidth_frac)
    for c in curves:
        np.testing.assert_array_equal(
            a.predict_w(KNOTS_FRAC, idle_w=c[0], peak_w=c[-1]), b.predict_w(KNOTS_FRAC, idle_w=c[0], peak_w=c[-1])
        )


def test_neighbours_follow_the_closest_idle_ratio_and_stay_physical() -> None:
    flat = np.array([100.0, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200])  # idle/peak 0.5
    steep = np.array([20.0, 60, 70, 80, 90, 100, 110, 120, 140, 160, 200])  # idle/peak 0.1
    m = SpecPowerModel(shape="neighbours", bandwidth_frac=0.02)
    m.fit_curves(np.stack([flat, steep]))
    np.testing.assert_allclose(m.predict_w(KNOTS_FRAC, idle_w=20.0, peak_w=200.0), steep)
    np.testing.assert_allclose(m.predict_w(KNOTS_FRAC, idle_w=100.0, peak_w=200.0), flat)
    mid = SpecPowerModel(shape="neighbours", bandwidth_frac=10.0)  # very wide: the mean shape
    mid.fit_curves(np.stack([flat, steep]))
    p = mid.predict_w(np.linspace(0, 1, 101), idle_w=30.0, peak_w=90.0)
    assert p[0] == pytest.approx(30.0) and p[-1] == pytest.approx(90.0)
    assert np.all(np.diff(p) >= 0)


def test_auto_beats_the_linear_baseline_on_servers_it_never_saw(datasets_dir: Path) -> None:
    curves = _curves(datasets_dir)
    err_model, err_lin = [], []
    for i in range(len(curves)):
        m = SpecPowerModel()
        m.fit_curves(np.delete(curves, i, axis=0))  # server i is out of fitting and choosing
        c = curves[i]
        err_model.append(interior_mape_pct(m.predict_w(KNOTS_FRAC, idle_w=c[0], peak_w=c[-1]), c))
        err_lin.append(interior_mape_pct(LinearPowerModel().predict_w(KNOTS_FRAC, idle_w=c[0], peak_w=c[-1]), c))
    assert np.mean(err_model) < np.mean(err_lin)


@pytest.mark.parametrize(
    "kwargs", [{"bandwidth_frac": 0.0}, {"candidate_bandwidths_frac": ()}, {"candidate_bandwidths_frac": (0.1, -1.0)}]
)
def test_bad_bandwidths_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(PredictionError, match="bandwidth"):
        SpecPowerModel(**kwargs)  # type: ignore[arg-type]


def test_auto_with_too_few_curves_uses_the_median_shape() -> None:
    m = SpecPowerModel()
    m.fit_curves(np.array([[50.0, 80, 95, 105, 115, 125, 140, 160, 190, 220, 240]]))
    assert m.selected_shape == "median" and m.selection_mape_pct == {}
    assert m.predict_w(np.array([0.1]), idle_w=50.0, peak_w=240.0)[0] == pytest.approx(80.0)
