"""bench/predict_power.py: the held-out server never reaches a fit, figures are reproducible."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from tests.bench.loader import load_bench


@pytest.fixture(scope="module")
def pp() -> ModuleType:
    backtest = load_bench("backtest.py", "wattwise_bench_backtest")  # puts bench/ on the import path
    module: ModuleType = backtest.predict_power
    return module


@pytest.mark.parametrize("by_platform", [False, True])
def test_folds_never_fit_on_the_held_out_server_or_its_siblings(
    pp: ModuleType, datasets_dir: Path, by_platform: bool
) -> None:
    names, _ = pp._curves()
    seen = []
    for i, fit_idx in pp.folds(names, by_platform):
        seen.append(i)
        assert i not in fit_idx
        if by_platform:
            assert all(pp.platform_of(names[j]) != pp.platform_of(names[i]) for j in fit_idx)
        else:
            assert len(fit_idx) == len(names) - 1
    assert seen == list(range(len(names)))
    if by_platform:  # the siblings this split exists for really are grouped
        assert pp.platform_of("Dell PowerEdge R740") == pp.platform_of("Dell PowerEdge R640")
        assert pp.platform_of("Dell PowerEdge R830") == "Dell PowerEdge R830"


def test_held_out_curve_is_never_passed_to_fit_curves(
    pp: ModuleType, datasets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted: list[np.ndarray] = []

    class Recording(pp.SpecPowerModel):  # type: ignore[name-defined,misc]
        def fit_curves(self, curves_w: Any) -> None:
            fitted.append(np.array(curves_w, copy=True))
            super().fit_curves(curves_w)

    monkeypatch.setattr(pp, "SpecPowerModel", Recording)
    names, curves = pp._curves()
    per, _, _, _ = pp.held_out(by_platform=False)
    n_spec = sum(1 for v, _ in pp.VARIANTS if v != "linear")
    assert len(fitted) == n_spec * len(names)
    for k, fit in enumerate(fitted):
        i = k // n_spec
        assert not any(np.array_equal(row, curves[i]) for row in fit)
    assert (per["fit_servers"] == len(names) - 1).all()


def test_evaluation_is_deterministic_and_reports_the_goal_honestly(pp: ModuleType, datasets_dir: Path) -> None:
    a, b = pp.evaluate(0), pp.evaluate(0)
    assert a.per_server.equals(b.per_server) and a.per_platform.equals(b.per_platform)
    assert a.choices == b.choices
    lines = pp.section_lines(a, ["| table |"])
    text = "\n".join(lines)
    mean = a.per_server["shipped_mape_pct"].mean()
    assert f"| {mean:.2f} |" in text
    assert ("Goal (mean ≤5 %, leave-one-server-out): met." in text) == (mean <= 5.0)
    assert (a.per_platform["fit_servers"] < len(a.per_platform)).all()
