"""Validation: each rejection reason, counted per device, logged on transitions; staleness."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from tests.conftest import EXAMPLES

from wattwise.model.loader import load_site
from wattwise.model.ups_status import UpsStatus, status_flags
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.metrics import METRICS, UPS_STATUS_BITS, MetricKind, ups_status_bitmask
from wattwise.telemetry.validate import ReadingValidator, RejectReason, site_device_ids

NOW_S = 1_700_000_000.0
R = RejectReason


def _one(device: str, metric: str, value: float, t_s: float = NOW_S) -> ReadingBatch:
    return ReadingBatch.from_columns([device], [metric], [value], [t_s])


@pytest.mark.parametrize(
    ("device", "metric", "value", "t_s", "reason"),
    [
        ("ups-a", "power_w", 1500.0, NOW_S, R.OK),
        ("ups-a", "power_w", -1.0, NOW_S, R.OUT_OF_RANGE),
        ("ups-a", "power_w", math.nan, NOW_S, R.NOT_FINITE),
        ("ups-a", "power_w", math.inf, NOW_S, R.NOT_FINITE),
        ("ups-a", "power_w", 1.0, math.nan, R.NOT_FINITE),
        ("ups-a", "voltage_v", 1e7, NOW_S, R.OUT_OF_RANGE),
        ("ups-a", "temperature_c", -300.0, NOW_S, R.OUT_OF_RANGE),
        ("ups-a", "battery_charge_frac", 42.0, NOW_S, R.OUT_OF_RANGE),  # percent not converted by a driver
        ("ups-a", "power_kw", 1.0, NOW_S, R.UNKNOWN_METRIC),
        ("ghost", "power_w", 1.0, NOW_S, R.UNKNOWN_DEVICE),
        ("ups-a/BatteryTemp", "temperature_c", 30.0, NOW_S, R.OK),  # a sensor of a known device
        ("ghost/BatteryTemp", "temperature_c", 30.0, NOW_S, R.UNKNOWN_DEVICE),
        ("ups-a/", "temperature_c", 30.0, NOW_S, R.UNKNOWN_DEVICE),
        ("ups-a", "power_w", 1.0, NOW_S + 3600, R.FUTURE),
        ("ups-a", "power_w", 1.0, NOW_S - 30 * 86400, R.TOO_OLD),
    ],
)
def test_each_reason(device: str, metric: str, value: float, t_s: float, reason: RejectReason) -> None:
    v = ReadingValidator({"ups-a"})
    res = v.validate(_one(device, metric, value, t_s), NOW_S)
    assert [R(int(x)) for x in res.reasons] == [reason]
    assert len(res.accepted) == (1 if reason is R.OK else 0)
    if reason is not R.OK:
        assert v.stats.rejected == {(reason, device): 1}


def test_duplicates_within_a_batch_keep_the_first() -> None:
    v = ReadingValidator({"a", "b"})
    b = ReadingBatch.from_columns(["a", "b", "a", "a"], ["power_w"] * 4, [1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 6.0])
    res = v.validate(b, 10.0)
    assert [R(int(x)) for x in res.reasons] == [R.OK, R.OK, R.DUPLICATE, R.OK]
    assert res.accepted.value.tolist() == [1.0, 2.0, 4.0]


def test_counters_never_go_backwards_across_batches() -> None:
    assert METRICS["energy_j"].kind is MetricKind.COUNTER
    v = ReadingValidator({"pdu-1"})
    first = v.validate(ReadingBatch.from_columns(["pdu-1"] * 2, ["energy_j"] * 2, [100.0, 200.0], [1.0, 2.0]), 10.0)
    assert len(first.accepted) == 2
    later = v.validate(ReadingBatch.from_columns(["pdu-1"] * 2, ["energy_j"] * 2, [150.0, 250.0], [3.0, 4.0]), 10.0)
    assert [R(int(x)) for x in later.reasons] == [R.COUNTER_BACKWARDS, R.OK]
    # gauges may go down freely
    g = v.validate(ReadingBatch.from_columns(["pdu-1"] * 2, ["power_w"] * 2, [9.0, 1.0], [3.0, 4.0]), 10.0)
    assert len(g.accepted) == 2


def test_mixed_batch_counts_per_reason_and_device_and_keeps_order() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    devices = rng.choice(["a", "b", "ghost"], n)
    values = rng.uniform(-100, 1000, n)
    v = ReadingValidator({"a", "b"})
    res = v.validate(
        ReadingBatch.from_columns(devices.tolist(), ["power_w"] * n, values, NOW_S + np.arange(n)), NOW_S + n
    )
    expect_ok = (devices != "ghost") & (values >= 0)
    assert (res.reasons == 0).tolist() == expect_ok.tolist()
    assert res.accepted.value.tolist() == values[expect_ok].tolist()
    assert v.stats.accepted_total == int(expect_ok.sum())
    assert v.stats.rejected[(R.UNKNOWN_DEVICE, "ghost")] == int((devices == "ghost").sum())
    assert v.stats.rejected[(R.OUT_OF_RANGE, "a")] == int(((devices == "a") & (values < 0)).sum())
    assert v.stats.rejected_total + v.stats.accepted_total == n


def test_rejections_are_logged_on_transition_only(caplog: pytest.LogCaptureFixture) -> None:
    v = ReadingValidator({"a"})
    with caplog.at_level(logging.INFO, logger="wattwise.telemetry.validate"):
        for _ in range(5):
            v.validate(_one("a", "power_w", -5.0), NOW_S)
        v.validate(_one("a", "power_w", 5.0), NOW_S)
        v.validate(_one("a", "power_w", -5.0, NOW_S + 1), NOW_S)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "device_id=a readings rejected: out_of_range",
        "device_id=a readings valid again after out_of_range",
        "device_id=a readings rejected: out_of_range",
    ]


def test_staleness_is_age_of_last_good_reading() -> None:
    v = ReadingValidator({"a", "b"})
    v.validate(ReadingBatch.from_columns(["a", "a"], ["power_w"] * 2, [1.0, 2.0], [100.0, 90.0]), 100.0)
    v.validate(_one("b", "power_w", -1.0, 100.0), 100.0)  # a rejected reading does not refresh
    stale = v.staleness_s(130.0)
    assert stale["a"] == 30.0
    assert stale["b"] == math.inf


def test_site_ids_are_known_devices() -> None:
    site = load_site(EXAMPLES / "single-rack.yaml")
    ids = site_device_ids(site)
    assert site.id in ids
    assert {f.id for f in site.feeds} <= ids
    assert {s.id for s in site.servers} <= ids
    assert {p.id for s in site.servers for p in s.psus} <= ids


def test_registry_names_carry_their_unit() -> None:
    assert METRICS["power_w"].prom_name == "wattwise_power_watts"
    assert METRICS["energy_j"].prom_name == "wattwise_energy_joules_total"
    assert METRICS["battery_runtime_s"].prom_name == "wattwise_battery_runtime_seconds"
    for m in METRICS.values():
        assert m.min_value < m.max_value, m
    assert ups_status_bitmask("OL CHRG") == 33.0


def test_ups_status_bitmask_uses_the_one_nut_status_encoding() -> None:
    # The bus metric once had its own bit order (OVER=256 ... CAL=16384): the same word list
    # gave different numbers on ups_status_bitmask and on the NUT driver's ups_status_flags.
    assert dict(UPS_STATUS_BITS) == {flag.name: flag.value for flag in UpsStatus}
    for flag in UpsStatus:
        assert ups_status_bitmask(f"OL {flag.name}") == float(status_flags(f"OL {flag.name}"))
    assert ups_status_bitmask("OL CAL") == 257.0
    assert ups_status_bitmask("OB FSD") == 2.0 + 8192.0
    assert ups_status_bitmask("OL VENDORWORD") == 1.0
    assert ups_status_bitmask("OB OB LB") == 6.0
