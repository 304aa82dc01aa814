"""The registry of known metrics: name (unit in the name), SI unit, physical range and kind.

Every reading names one of these metrics; its value is already in the metric's SI unit
(drivers convert device units such as NUT percent, centi-degrees or kW exactly once).
The range is *physical*: a value outside it cannot be a true measurement and is rejected.

>>> METRICS["power_w"].unit, METRICS["energy_j"].kind
('W', <MetricKind.COUNTER: 'counter'>)
>>> METRICS["temperature_c"].prom_name
'wattwise_temperature_celsius'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from wattwise.model.metrics import METRICS as CANONICAL_METRICS
from wattwise.model.ups_status import UpsStatus


class MetricKind(StrEnum):
    """Prometheus-style kind: a gauge goes up and down, a counter only grows."""

    GAUGE = "gauge"
    COUNTER = "counter"


# Suffix of a metric name -> (SI unit, Prometheus base-unit suffix).
_UNITS: dict[str, tuple[str, str]] = {
    "_w": ("W", "_watts"),
    "_va": ("VA", "_voltamperes"),
    "_var": ("var", "_voltamperes_reactive"),
    "_v": ("V", "_volts"),
    "_a": ("A", "_amperes"),
    "_j": ("J", "_joules"),
    "_c": ("°C", "_celsius"),
    "_s": ("s", "_seconds"),
    "_hz": ("Hz", "_hertz"),
    "_frac": ("1", "_ratio"),
    "_bps": ("bit/s", "_bits_per_second"),
    "_rpm": ("rpm", "_rpm"),
    "_lpm": ("L/min", "_litres_per_minute"),
    "_pa": ("Pa", "_pascals"),
    "_bitmask": ("1", "_bitmask"),
    "_bool": ("1", ""),
    "_count": ("1", ""),
}


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One known metric.

    Attributes:
        name: The metric name, ending in its unit suffix (``power_w``).
        unit: SI unit symbol.
        min_value: Smallest physically possible value (inclusive).
        max_value: Largest physically possible value (inclusive).
        kind: Gauge or counter (counters never go backwards).
        help: One line for humans and for the Prometheus ``HELP`` text.
    """

    name: str
    unit: str
    min_value: float
    max_value: float
    kind: MetricKind
    help: str

    @property
    def prom_name(self) -> str:
        """Prometheus name in base units: ``wattwise_power_watts``, ``wattwise_energy_joules_total``."""
        for suffix, (_, prom_suffix) in _UNITS.items():
            if self.name.endswith(suffix):
                base = f"wattwise_{self.name[: -len(suffix)]}{prom_suffix}"
                return f"{base}_total" if self.kind is MetricKind.COUNTER else base
        return f"wattwise_{self.name}"


def _unit_of(name: str) -> str:
    for suffix, (unit, _) in _UNITS.items():
        if name.endswith(suffix):
            return unit
    return "1"  # dimensionless flags without a suffix (``leak``, ``ups_status``)


def _m(name: str, lo: float, hi: float, help_: str, kind: MetricKind = MetricKind.GAUGE) -> MetricDef:
    return MetricDef(name, _unit_of(name), lo, hi, kind, help_)


_C = MetricKind.COUNTER
_BIG_W = 1e9  # a whole campus is far below 1 GW; anything above is a unit error
_DEFS: tuple[MetricDef, ...] = (
    # electrical, AC and DC
    _m("power_w", 0.0, _BIG_W, "Real power drawn or delivered"),
    _m("input_power_w", 0.0, _BIG_W, "Real power at the input of a converter"),
    _m("output_power_w", 0.0, _BIG_W, "Real power at the output of a converter"),
    _m("apparent_power_va", 0.0, _BIG_W, "Apparent power"),
    _m("reactive_power_var", -_BIG_W, _BIG_W, "Reactive power"),
    _m("power_cap_w", 0.0, _BIG_W, "Configured power cap"),
    _m("voltage_v", 0.0, 50_000.0, "RMS or DC voltage"),
    _m("input_voltage_v", 0.0, 50_000.0, "Input RMS voltage"),
    _m("output_voltage_v", 0.0, 50_000.0, "Output RMS or DC voltage"),
    _m("dc_voltage_v", 0.0, 1_500.0, "DC bus voltage"),
    _m("battery_voltage_v", 0.0, 1_500.0, "Battery string voltage"),
    _m("ripple_v", 0.0, 100.0, "Peak-to-peak voltage ripple"),
    _m("current_a", 0.0, 100_000.0, "RMS or DC current"),
    _m("input_current_a", 0.0, 100_000.0, "Input current"),
    _m("output_current_a", 0.0, 100_000.0, "Output current"),
    _m("dc_current_a", 0.0, 100_000.0, "DC current"),
    _m("ripple_current_a", 0.0, 1_000.0, "Peak-to-peak current ripple"),
    _m("frequency_hz", 0.0, 1_000.0, "AC line frequency"),
    _m("power_factor_frac", 0.0, 1.0, "Power factor"),
    _m("efficiency_frac", 0.0, 1.0, "Conversion efficiency (output / input power)"),
    _m("load_frac", 0.0, 5.0, "Load as a fraction of rating (above 1 is overload)"),
    _m("energy_j", 0.0, 1e18, "Energy delivered since the meter started", _C),
    # UPS and battery
    _m("battery_charge_frac", 0.0, 1.0, "Battery state of charge"),
    _m("battery_health_frac", 0.0, 1.0, "Battery state of health"),
    _m("battery_runtime_s", 0.0, 1e6, "Estimated runtime on battery"),
    _m("battery_temperature_c", -40.0, 120.0, "Battery temperature"),
    _m("on_battery_bool", 0.0, 1.0, "1 when the UPS runs on battery"),
    _m("ups_status_bitmask", 0.0, 2.0**31, "UPS status flags as a bitmask (see docs/bus.md)"),
    _m("ats_source_count", 0.0, 16.0, "Index of the ATS source in use"),
    _m("transfer_count", 0.0, 1e12, "Number of transfers since start", _C),
    # temperatures and environment
    _m("temperature_c", -60.0, 200.0, "Device temperature"),
    _m("inlet_temperature_c", -40.0, 90.0, "Inlet air temperature"),
    _m("outlet_temperature_c", -40.0, 120.0, "Exhaust air temperature"),
    _m("cpu_temperature_c", -40.0, 150.0, "CPU temperature"),
    _m("ambient_temperature_c", -60.0, 70.0, "Ambient temperature"),
    _m("coolant_temperature_c", -20.0, 120.0, "Coolant temperature"),
    _m("humidity_frac", 0.0, 1.0, "Relative humidity"),
    _m("fan_rpm", 0.0, 50_000.0, "Fan speed"),
    _m("pump_rpm", 0.0, 20_000.0, "Pump speed"),
    _m("flow_lpm", 0.0, 10_000.0, "Coolant flow"),
    _m("pressure_pa", 0.0, 5e6, "Coolant pressure"),
    _m("cooling_capacity_w", 0.0, _BIG_W, "Available cooling capacity"),
    _m("leak_bool", 0.0, 1.0, "1 when a leak sensor is wet"),
    # workload and node
    _m("cpu_frac", 0.0, 1.0, "CPU utilisation"),
    _m("memory_frac", 0.0, 1.0, "Memory utilisation"),
    _m("gpu_frac", 0.0, 1.0, "GPU utilisation"),
    _m("network_bps", 0.0, 1e13, "Network throughput"),
    _m("network_rx_bps", 0.0, 1e13, "Network receive throughput"),
    _m("network_tx_bps", 0.0, 1e13, "Network transmit throughput"),
    _m("disk_bps", 0.0, 1e12, "Storage throughput"),
    _m("disk_read_bps", 0.0, 1e12, "Storage read throughput"),
    _m("disk_write_bps", 0.0, 1e12, "Storage write throughput"),
    _m("throttle_frac", 0.0, 1.0, "Throttle level as a fraction of full power"),
    _m("heartbeat_gap_s", 0.0, 1e6, "Time since the previous heartbeat"),
    _m("heartbeat_jitter_s", 0.0, 1e6, "Heartbeat jitter"),
    _m("latency_s", 0.0, 1e6, "Processing latency"),
    _m("consumer_lag_count", 0.0, 1e15, "Messages waiting for a stream processor"),
    _m("uptime_s", 0.0, 1e10, "Time since start", _C),
    _m("error_count", 0.0, 1e15, "Errors since start (ECC, PSU faults, diagnostics)", _C),
    _m("diagnostic_code_count", 0.0, 2.0**31, "Latest diagnostic/fault code reported by the device"),
    _m("up_bool", 0.0, 1.0, "1 when the device answers"),
    # dimensionless flags under the short names drivers and the twin use
    _m("leak", 0.0, 1.0, "1 when a leak sensor is wet (same as leak_bool)"),
    _m("ups_status", 0.0, 2.0**31, "UPS status flags as a bitmask (same as ups_status_bitmask)"),
)

# The canonical names drivers and the twin emit (wattwise.model.metrics) are all known here too.
_OWN = {d.name for d in _DEFS}
_CANONICAL_DEFS = tuple(
    MetricDef(m.name, m.unit, m.min_value, m.max_value, MetricKind(m.kind.value), m.description)
    for m in CANONICAL_METRICS.values()
    if m.name not in _OWN
)
METRICS: Mapping[str, MetricDef] = MappingProxyType({d.name: d for d in (*_DEFS, *_CANONICAL_DEFS)})
"""Every known metric by name (read-only)."""

METRIC_NAMES: tuple[str, ...] = tuple(METRICS)
"""Registered names in a fixed order (their index is the metric code used by vectorized code)."""

UPS_STATUS_BITS: Mapping[str, int] = MappingProxyType({flag.name or "": flag.value for flag in UpsStatus})
"""NUT ``ups.status`` words to bits of the ``ups_status_bitmask`` metric: the bits of
:class:`wattwise.model.ups_status.UpsStatus`, so ``ups_status_bitmask`` and the NUT driver's and
twin's ``ups_status_flags`` carry one encoding (``OL``=1 ... ``CAL``=256 ... ``NOCOMM``=32768)."""


def ups_status_bitmask(status: str) -> float:
    """Encode a NUT ``ups.status`` string (``"OB LB"``) as the numeric bitmask metric value.

    Words that are not NUT status words (vendor extensions) add no bit.

    >>> ups_status_bitmask("OB LB"), ups_status_bitmask("OL CAL")
    (6.0, 257.0)
    """
    mask = 0
    for word in status.split():
        mask |= UPS_STATUS_BITS.get(word, 0)  # a repeated word sets its bit once
    return float(mask)
