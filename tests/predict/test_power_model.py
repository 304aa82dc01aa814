"""Power model: held-out SPECpower servers, physical sanity, bad input, residual terms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wattwise.errors import PredictionError
from wattwise.predict.power_model import KNOTS_FRAC, LinearPowerModel, SpecPowerModel


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
