"""Small synthetic inputs shared by the prediction tests."""

from __future__ import annotations

import numpy as np
import pytest

from wattwise.predict.base import Series

STEP_S = 600.0
DAY_S = 86_400.0


def synthetic_series(days: float = 6.0, seed: int = 7, step_s: float = STEP_S) -> Series:
    """A daily-seasonal power-like series (W) with noise, starting on a Monday 00:00 UTC."""
    rng = np.random.default_rng(seed)
    t_s = 1_700_438_400.0 + np.arange(0.0, days * DAY_S, step_s)
    value = 1000.0 + 200.0 * np.sin(2 * np.pi * t_s / DAY_S) + rng.normal(0.0, 15.0, t_s.shape[0])
    return Series(t_s=t_s, value=value)


@pytest.fixture
def series() -> Series:
    """Six days of synthetic 10-minute power."""
    return synthetic_series()
