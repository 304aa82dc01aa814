"""No two readings of one poll share (device_id, metric, t_s): every DMTF Redfish mockup.

Telemetry rejects a repeated (device, metric, time) within a batch as a duplicate and the store
is keyed on it, so a poll that yields two readings differing only by a tag loses one of them
(wattwise issue 5: nothing valid is lost).
"""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import need
from drivers.test_redfish_mockups import MOCKUPS, mockup_transport, mockups
from wattwise.drivers.redfish import RedfishDriver
from wattwise.drivers.redfish_client import RedfishEndpoint
from wattwise.model.values import Reading


def repeated_keys(readings: list[Reading]) -> dict[tuple[str, str, float], int]:
    """(device_id, metric, t_s) keys held by more than one reading, with their counts."""
    counts = Counter((r.device_id, r.metric, r.t_s) for r in readings)
    return {key: n for key, n in counts.items() if n > 1}


async def _poll(name: str, polls: int = 2) -> list[list[Reading]]:
    need(MOCKUPS.is_dir(), f"Redfish mockups not found at {MOCKUPS}")
    driver = RedfishDriver(
        "dev",
        RedfishEndpoint("http://bmc.test", "u", "p", auth="basic"),
        transport=mockup_transport(MOCKUPS / name, []),
        now_s=lambda: 1000.0,
        slow_every=polls + 1,  # the second poll serves slow resources from the cache
    )
    try:
        return [await driver.read() for _ in range(polls)]
    finally:
        await driver.close()


@pytest.mark.parametrize("name", [p.name for p in mockups()] or ["public-rackmount1"])
async def test_no_two_readings_of_a_mockup_poll_share_device_metric_and_time(name: str) -> None:
    for readings in await _poll(name):
        assert repeated_keys(readings) == {}


async def test_thermal_temperatures_map_to_canonical_metrics_and_aggregates() -> None:
    # Legacy Thermal of public-rackmount1: CPU1 41 °C (CPU2 has no reading), intake 25 °C,
    # fans 2100 and 2050 rpm.
    (readings, _) = await _poll("public-rackmount1")
    values = {(r.device_id, r.metric): r.value for r in readings}
    assert values[("dev", "inlet_temp_c")] == 25.0
    assert values[("dev", "fan_speed_rpm")] == 2050.0  # the slowest fan
    assert values[("dev", "outlet_temp_c")] == 40.5  # Sensors/ExhaustTemp (PhysicalContext Exhaust)
    assert values[("dev", "ambient_temp_c")] == 22.5  # Sensors/AmbientTemp (Room)
    assert values[("dev/CPU1Temp", "temperature_c")] == 44.0  # a sensor of a part: its own sub-device
    assert values[("dev/Battery1Temp", "temperature_c")] == 33.0


async def test_hottest_cpu_is_the_chassis_temperature_in_legacy_thermal() -> None:
    (readings, _) = await _poll("public-telemetry")
    values = {(r.device_id, r.metric): r.value for r in readings}
    assert values[("dev", "temperature_c")] == 21.0
    assert values[("dev", "inlet_temp_c")] == 25.0


async def test_mains_circuits_are_parts_of_the_power_shelf() -> None:
    (readings, _) = await _poll("public-power-shelf")
    values = {(r.device_id, r.metric): r.value for r in readings}
    assert values[("dev/AC1", "power_w")] == 897.4
    assert values[("dev/AC2", "voltage_v")] == 222.8
    assert values[("dev", "power_w")] == 6438.0


async def test_cooling_unit_loop_sensors_keep_their_meaning() -> None:
    (readings, _) = await _poll("public-cooling-unit")
    values = {(r.device_id, r.metric): r.value for r in readings}
    assert values[("dev", "temperature_c")] == 24.0  # EnvironmentMetrics
    assert values[("dev/PrimarySupplyTemp", "inlet_temp_c")] == 30.0  # PhysicalContext LiquidInlet
    assert values[("dev/PrimaryReturnTemp", "outlet_temp_c")] == 40.0  # LiquidOutlet
    assert values[("dev/PrimaryFlow", "coolant_flow_lpm")] == 42.0
    assert values[("dev/SecondaryFlow", "coolant_flow_lpm")] == 79.6
