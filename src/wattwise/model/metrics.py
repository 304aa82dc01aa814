"""Canonical metric names, each with its SI unit, physical range and kind.

Drivers and the twin emit only these names (unit conversion happens once, in drivers);
telemetry validates readings against these ranges. A name ends with its unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MetricKind(StrEnum):
    """Gauges go up and down; counters only go up (until a device reset)."""

    GAUGE = "gauge"
    COUNTER = "counter"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A metric: name, SI unit, inclusive physical range, kind, and a description."""

    name: str
    unit: str
    min_value: float
    max_value: float
    kind: MetricKind = MetricKind.GAUGE
    description: str = ""


def _g(name: str, unit: str, lo: float, hi: float, doc: str) -> MetricSpec:
    return MetricSpec(name, unit, lo, hi, MetricKind.GAUGE, doc)


_PHASES = (1, 2, 3)

_SPECS = (
    _g("power_w", "W", 0.0, 1e8, "real power drawn (or delivered, for sources)"),
    _g("input_power_w", "W", 0.0, 1e8, "AC input power of a converter (PSU, UPS, rectifier)"),
    _g("output_power_w", "W", 0.0, 1e8, "output power of a converter"),
    _g("apparent_power_va", "VA", 0.0, 1e8, "apparent power"),
    _g("capacity_w", "W", 0.0, 1e9, "current usable capacity"),
    _g("voltage_v", "V", 0.0, 50_000.0, "AC voltage (RMS)"),
    _g("current_a", "A", 0.0, 10_000.0, "AC current (RMS); for a polyphase device, the single total"),
    *(
        _g(f"current_l{p}_a", "A", 0.0, 10_000.0, f"AC current (RMS) of phase L{p} (NUT input.L{p}.current)")
        for p in _PHASES
    ),
    _g("dc_voltage_v", "V", 0.0, 1000.0, "DC bus or output voltage"),
    _g("dc_current_a", "A", 0.0, 10_000.0, "DC output current"),
    _g("frequency_hz", "Hz", 0.0, 1000.0, "AC frequency"),
    _g("ripple_v", "V", 0.0, 100.0, "output voltage ripple, peak to peak"),
    _g("efficiency_frac", "1", 0.0, 1.0, "conversion efficiency"),
    _g("load_frac", "1", 0.0, 5.0, "load relative to rating (over 1 means overloaded)"),
    _g("setpoint_w", "W", 0.0, 1e7, "commanded output share of a PSU"),
    _g("power_cap_w", "W", 0.0, 1e7, "power limit in force"),
    _g("throttle_frac", "1", 0.0, 1.0, "throttle level in force (1 = full power)"),
    _g("temperature_c", "°C", -50.0, 200.0, "device internal temperature"),
    _g("inlet_temp_c", "°C", -20.0, 100.0, "air or coolant inlet temperature"),
    _g("outlet_temp_c", "°C", -20.0, 120.0, "air or coolant outlet temperature"),
    _g("ambient_temp_c", "°C", -40.0, 70.0, "room temperature"),
    _g("humidity_frac", "1", 0.0, 1.0, "relative humidity"),
    _g("battery_charge_frac", "1", 0.0, 1.0, "battery state of charge (NUT battery.charge / 100)"),
    _g("battery_runtime_s", "s", 0.0, 1e6, "estimated runtime at the present load (NUT battery.runtime)"),
    _g("battery_voltage_v", "V", 0.0, 1000.0, "battery string voltage"),
    _g("battery_health_frac", "1", 0.0, 1.0, "battery state of health"),
    _g("on_battery", "1", 0.0, 1.0, "1 when the UPS runs from its battery (NUT OB)"),
    _g("low_battery", "1", 0.0, 1.0, "1 when the UPS reports low battery (NUT LB)"),
    _g("ups_status_flags", "1", 0.0, 65535.0, "NUT ups.status flags as a bitmask (see wattwise.drivers.nut)"),
    _g("ats_source_index", "1", 0.0, 1.0, "which source an ATS is on (0 = first source)"),
    _g("source_available", "1", 0.0, 1.0, "1 when a feed delivers power"),
    _g("breaker_tripped", "1", 0.0, 1.0, "1 when a breaker has tripped"),
    *(_g(f"breaker_l{p}_tripped", "1", 0.0, 1.0, f"1 when the phase L{p} breaker has tripped") for p in _PHASES),
    _g("outlet_on", "1", 0.0, 1.0, "1 when an outlet is switched on"),
    _g("available", "1", 0.0, 1.0, "1 when a unit (PSU, server, module, processor) is up"),
    _g("fan_speed_rpm", "rpm", 0.0, 50_000.0, "fan speed"),
    _g("pump_speed_rpm", "rpm", 0.0, 20_000.0, "pump speed"),
    _g("coolant_flow_lpm", "L/min", 0.0, 10_000.0, "coolant flow"),
    _g("leak_detected", "1", 0.0, 1.0, "1 when a leak sensor is wet"),
    _g("heat_w", "W", 0.0, 1e8, "heat to remove"),
    _g("cooling_capacity_w", "W", 0.0, 1e8, "heat removal capacity available now"),
    _g("cpu_frac", "1", 0.0, 1.0, "CPU utilisation"),
    _g("memory_frac", "1", 0.0, 1.0, "memory utilisation"),
    _g("network_bps", "B/s", 0.0, 1e12, "network throughput"),
    _g("disk_bps", "B/s", 0.0, 1e12, "storage throughput"),
    _g("heartbeat_gap_s", "s", 0.0, 1e6, "time since the previous heartbeat"),
    _g("lag_s", "s", 0.0, 1e6, "event-processing lag"),
    _g("price_per_kwh", "currency/kWh", -10.0, 100.0, "energy price signal"),
    _g("carbon_g_per_kwh", "gCO2/kWh", 0.0, 5000.0, "grid carbon intensity signal"),
    MetricSpec("energy_j", "J", 0.0, 1e18, MetricKind.COUNTER, "energy delivered since device start"),
    MetricSpec("alarm_count", "1", 0.0, 1e12, MetricKind.COUNTER, "alarms raised since device start"),
)

METRICS: dict[str, MetricSpec] = {m.name: m for m in _SPECS}

PHASE_NAMES: tuple[str, ...] = tuple(f"L{p}" for p in _PHASES)
"""Phase labels of a three-phase feed, in order (``L1``, ``L2``, ``L3``)."""

PHASE_CURRENT_METRICS: tuple[str, ...] = tuple(f"current_l{p}_a" for p in _PHASES)
"""Per-phase RMS current metrics, index 0 is L1."""

PHASE_BREAKER_METRICS: tuple[str, ...] = tuple(f"breaker_l{p}_tripped" for p in _PHASES)
"""Per-phase breaker state metrics, index 0 is L1."""


def phase_current_metric(phase: int) -> str:
    """The metric of the RMS current of phase ``phase`` (1-based: 1 is L1).

    A phase is part of a reading's identity, so each phase has its own metric: readings of
    L1, L2 and L3 taken at the same instant must not share (device, metric, time).

    >>> phase_current_metric(2)
    'current_l2_a'

    Raises:
        ValueError: ``phase`` is not 1, 2 or 3.
    """
    return _by_phase(PHASE_CURRENT_METRICS, phase)


def phase_breaker_metric(phase: int) -> str:
    """The metric of the breaker state of phase ``phase`` (1-based).

    >>> phase_breaker_metric(3)
    'breaker_l3_tripped'

    Raises:
        ValueError: ``phase`` is not 1, 2 or 3.
    """
    return _by_phase(PHASE_BREAKER_METRICS, phase)


def phase_of_metric(metric: str) -> int | None:
    """The 1-based phase a per-phase metric is about, or None for any other metric.

    >>> phase_of_metric("current_l3_a"), phase_of_metric("breaker_l1_tripped"), phase_of_metric("current_a")
    (3, 1, None)
    """
    for names in (PHASE_CURRENT_METRICS, PHASE_BREAKER_METRICS):
        if metric in names:
            return names.index(metric) + 1
    return None


def _by_phase(names: tuple[str, ...], phase: int) -> str:
    if phase not in _PHASES:
        raise ValueError(f"phase {phase} is not one of {_PHASES}")
    return names[phase - 1]
