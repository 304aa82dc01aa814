"""Canonical metric names, each with its SI unit, physical range and kind.

Drivers and the twin emit only these names (unit conversion happens once, in drivers);
telemetry validates readings against these ranges. A name ends with its unit.

A quantity measured per phase (PDU phase currents, NUT ``input.L1.current``) has one metric per
phase (``current_l1_a``..``current_l3_a``, see :class:`PhaseFamily`): the phases of one poll share
device and time, and (device, metric, time) identifies a reading. ``current_a`` is a single-phase
or total current.
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
PHASE_CURRENT_METRICS: tuple[str, ...] = tuple(f"current_l{p}_a" for p in _PHASES)
"""Per-phase RMS current metrics (NUT ``input.L1.current``...), index 0 is L1."""
PHASE_POWER_METRICS: tuple[str, ...] = tuple(f"power_l{p}_w" for p in _PHASES)
"""Per-phase real power metrics (NUT ``input.L1.realpower``...), index 0 is L1."""
PHASE_BREAKER_METRICS: tuple[str, ...] = tuple(f"breaker_l{p}_tripped" for p in _PHASES)
"""Per-phase breaker state metrics, index 0 is L1."""


def _per_phase(names: tuple[str, ...], unit: str, hi: float, doc: str) -> tuple[MetricSpec, ...]:
    return tuple(_g(m, unit, 0.0, hi, doc.format(f"L{p}")) for p, m in zip(_PHASES, names, strict=True))


_SPECS = (
    _g("power_w", "W", 0.0, 1e8, "real power drawn (or delivered, for sources)"),
    *_per_phase(PHASE_POWER_METRICS, "W", 1e8, "real power of phase {}"),
    _g("input_power_w", "W", 0.0, 1e8, "AC input power of a converter (PSU, UPS, rectifier)"),
    _g("output_power_w", "W", 0.0, 1e8, "output power of a converter"),
    _g("apparent_power_va", "VA", 0.0, 1e8, "apparent power"),
    _g("capacity_w", "W", 0.0, 1e9, "current usable capacity"),
    _g("voltage_v", "V", 0.0, 50_000.0, "AC voltage (RMS)"),
    _g("current_a", "A", 0.0, 10_000.0, "AC current (RMS); for a polyphase device, the single total"),
    *_per_phase(PHASE_CURRENT_METRICS, "A", 10_000.0, "AC current (RMS) of phase {}"),
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
    _g(
        "inlet_setpoint_c",
        "°C",
        -20.0,
        100.0,
        "inlet temperature set-point of a cooling unit (commanded, not measured)",
    ),
    _g("humidity_frac", "1", 0.0, 1.0, "relative humidity"),
    _g("battery_charge_frac", "1", 0.0, 1.0, "battery state of charge (NUT battery.charge / 100)"),
    _g("battery_runtime_s", "s", 0.0, 1e6, "estimated runtime at the present load (NUT battery.runtime)"),
    _g("battery_voltage_v", "V", 0.0, 1000.0, "battery string voltage"),
    _g("battery_temperature_c", "°C", -40.0, 120.0, "battery temperature (NUT battery.temperature)"),
    _g("battery_health_frac", "1", 0.0, 1.0, "battery state of health"),
    _g("on_battery", "1", 0.0, 1.0, "1 when the UPS runs from its battery (NUT OB)"),
    _g("low_battery", "1", 0.0, 1.0, "1 when the UPS reports low battery (NUT LB)"),
    _g("ups_status_flags", "1", 0.0, 65535.0, "NUT ups.status flags as a bitmask (see wattwise.model.ups_status)"),
    _g("ats_source_index", "1", 0.0, 1.0, "which source an ATS is on (0 = first source)"),
    _g("source_available", "1", 0.0, 1.0, "1 when a feed delivers power"),
    _g("breaker_tripped", "1", 0.0, 1.0, "1 when a breaker has tripped"),
    *_per_phase(PHASE_BREAKER_METRICS, "1", 1.0, "1 when the breaker of phase {} has tripped"),
    _g("outlet_on", "1", 0.0, 1.0, "1 when an outlet is switched on"),
    _g("available", "1", 0.0, 1.0, "1 when a unit (PSU, server, module, processor) is up"),
    _g("fan_speed_rpm", "rpm", 0.0, 50_000.0, "fan speed"),
    _g("pump_speed_rpm", "rpm", 0.0, 20_000.0, "pump speed"),
    _g("coolant_flow_lpm", "L/min", 0.0, 10_000.0, "coolant flow"),
    _g("leak_detected", "1", 0.0, 1.0, "1 when a leak sensor is wet"),
    _g("loop_isolated", "1", 0.0, 1.0, "1 when a racklet's liquid loop is isolated (valves closed)"),
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


@dataclass(frozen=True, slots=True)
class PhaseFamily:
    """One quantity measured per phase, as one canonical metric per phase.

    A phase is part of a reading's identity: the L1, L2 and L3 readings of one poll share
    (device, time), so they must differ by metric, or telemetry and the store (keyed on
    device, metric and time) keep only one of them. Exporters that prefer one series with a
    ``phase`` label use ``name`` as the series' metric name.

    Attributes:
        name: Name of the quantity regardless of phase, ending in its unit (``phase_current_a``).
        metrics: The canonical metric of each phase; index 0 is L1.
        description: What the quantity is, for any one phase.
    """

    name: str
    metrics: tuple[str, ...]
    description: str


PHASE_CURRENT = PhaseFamily("phase_current_a", PHASE_CURRENT_METRICS, "AC current (RMS) of one phase")
PHASE_POWER = PhaseFamily("phase_power_w", PHASE_POWER_METRICS, "real power of one phase")
PHASE_BREAKER = PhaseFamily(
    "phase_breaker_tripped", PHASE_BREAKER_METRICS, "1 when the breaker of one phase has tripped"
)
PHASE_FAMILIES: tuple[PhaseFamily, ...] = (PHASE_CURRENT, PHASE_POWER, PHASE_BREAKER)
_PHASE_OF: dict[str, tuple[PhaseFamily, int]] = {
    m: (fam, k + 1) for fam in PHASE_FAMILIES for k, m in enumerate(fam.metrics)
}


def phase_current_metric(phase: int) -> str:
    """The metric of the RMS current of phase ``phase`` (1-based: 1 is L1).

    >>> phase_current_metric(2)
    'current_l2_a'

    Raises:
        ValueError: ``phase`` is not 1, 2 or 3.
    """
    return _by_phase(PHASE_CURRENT, phase)


def phase_power_metric(phase: int) -> str:
    """The metric of the real power of phase ``phase`` (1-based).

    >>> phase_power_metric(1)
    'power_l1_w'

    Raises:
        ValueError: ``phase`` is not 1, 2 or 3.
    """
    return _by_phase(PHASE_POWER, phase)


def phase_breaker_metric(phase: int) -> str:
    """The metric of the breaker state of phase ``phase`` (1-based).

    >>> phase_breaker_metric(3)
    'breaker_l3_tripped'

    Raises:
        ValueError: ``phase`` is not 1, 2 or 3.
    """
    return _by_phase(PHASE_BREAKER, phase)


def phase_of_metric(metric: str) -> tuple[PhaseFamily, int] | None:
    """The family and 1-based phase of a per-phase metric, or None for any other metric.

    >>> family, phase = phase_of_metric("current_l3_a")
    >>> family.name, phase, phase_of_metric("current_a")
    ('phase_current_a', 3, None)
    """
    return _PHASE_OF.get(metric)


def _by_phase(family: PhaseFamily, phase: int) -> str:
    if phase not in _PHASES:
        raise ValueError(f"phase {phase} is not one of {_PHASES}")
    return family.metrics[phase - 1]
