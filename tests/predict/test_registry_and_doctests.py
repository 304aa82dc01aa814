"""Registry semantics, model round trip, and the runnable docstrings of the layer."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import numpy as np
import pytest
from tests.predict.conftest import STEP_S, synthetic_series

import wattwise.predict
from wattwise.errors import PredictionError
from wattwise.predict.naive import SeasonalNaiveForecaster
from wattwise.predict.registry import InMemoryModelRegistry, dump_model, load_model


def test_registry_versions_and_no_overwrite() -> None:
    reg = InMemoryModelRegistry()
    assert reg.latest("m") is None
    reg.save("m", 1, b"a", {"k": "v"})
    reg.save("m", 2, b"b", {})
    latest = reg.latest("m")
    assert latest is not None and latest.version == 2 and latest.blob == b"b"
    with pytest.raises(PredictionError):
        reg.save("m", 2, b"c", {})
    with pytest.raises(PredictionError):
        reg.save("m", 0, b"c", {})


def test_model_round_trip_predicts_the_same() -> None:
    f = SeasonalNaiveForecaster(86_400.0, max_horizon_s=3600.0)
    f.fit(synthetic_series())
    g = load_model(dump_model(f))
    assert isinstance(g, SeasonalNaiveForecaster)
    np.testing.assert_array_equal(g.predict(3600.0, STEP_S).upper, f.predict(3600.0, STEP_S).upper)
    with pytest.raises(PredictionError, match="unreadable"):
        load_model(b"not a pickle")


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.iter_modules(wattwise.predict.__path__)))
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(f"wattwise.predict.{name}")
    result = doctest.testmod(module)
    assert result.failed == 0
