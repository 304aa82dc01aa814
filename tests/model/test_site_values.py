"""Per-object invariants of the site model: frozen, units in range, helper properties."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from wattwise.model.site import Curve, Feed, Pdu, RuntimeTargets, Server, Tier


def test_tiers_rank_from_critical() -> None:
    assert [t.rank for t in Tier] == [0, 1, 2, 3]
    assert sorted(Tier, key=lambda t: t.rank)[0] is Tier.CRITICAL


def test_models_are_frozen_and_closed() -> None:
    feed = Feed(id="f", capacity_w=1000)
    with pytest.raises(ValidationError):
        feed.capacity_w = 5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        Feed(id="f", capacity_w=1000, capacity_kw=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0, 0.0, 2e9])
def test_capacity_must_be_finite_and_physical(bad: float) -> None:
    with pytest.raises(ValidationError):
        Feed(id="f", capacity_w=bad)


def test_pdu_phase_capacity_is_derated_breaker_times_voltage() -> None:
    assert Pdu(id="p", input="f", breaker_a=16, voltage_v=230).phase_capacity_w == pytest.approx(0.8 * 16 * 230)


def test_server_power_curve_needs_eleven_points() -> None:
    Server(id="s", rack="r", idle_w=10, peak_w=20, power_curve_w=tuple(float(i) for i in range(11)))
    with pytest.raises(ValidationError, match="11 points"):
        Server(id="s", rack="r", idle_w=10, peak_w=20, power_curve_w=(1.0, 2.0))


def test_curve_points_sorted_and_paired() -> None:
    Curve(load_frac=(0.1, 0.5, 1.0), value=(0.8, 0.94, 0.92))
    with pytest.raises(ValidationError, match="same length"):
        Curve(load_frac=(0.1, 0.5), value=(0.8, 0.9, 0.9))
    with pytest.raises(ValidationError, match="strictly increasing"):
        Curve(load_frac=(0.5, 0.5), value=(0.8, 0.9))
    with pytest.raises(ValidationError):
        Curve(load_frac=(0.5, 1.0), value=(0.8, math.nan))


def test_runtime_targets_per_tier() -> None:
    targets = RuntimeTargets(critical_s=1200, low_s=60)
    assert [targets.for_tier(t) for t in Tier] == [1200.0, 900.0, 300.0, 60.0]
