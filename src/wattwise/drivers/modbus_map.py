"""The wattwise racklet Modbus register map (docs/modbus-register-map.md), shared by driver and emulator.

Two unit ids per racklet: the power module and the cooling module. Measurements are input
registers (FC4, read-only); set-points are holding registers (FC3 read, FC6/FC16 write).
Values are scaled integers as industrial gear reports them: a register holds
``round(value_si * scale)``; ``words=2`` is an unsigned 32-bit value, high word first;
``signed`` registers are 16-bit two's complement. A quantity the module does not measure
reads as "not available": 0xFFFF (u16), 0x8000 (s16) or 0xFFFFFFFF (u32), and yields no reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAP_VERSION = 1
POWER_UNIT = 1
COOLING_UNIT = 2

INPUT_SIZE = 100  # input registers 0..99 on both units
HOLDING_START = 100
HOLDING_SIZE = 150  # holding registers 100..249

MAX_PSUS = 8
PSU_BASE = 10
PSU_STRIDE = 10
PSU_SETPOINT_BASE = 100  # holding: PSU i output set-point, W

MAX_LEAKS = 16
MAX_FANS = 16
MAX_PUMPS = 8
LEAK_BASE = 10
FAN_BASE = 30
PUMP_BASE = 50
INLET_SETPOINT = 200  # holding: inlet temperature set-point, 0.1 °C
FAN_SETPOINT_BASE = 210  # holding: fan i speed set-point, rpm
PUMP_SETPOINT_BASE = 230  # holding: pump i speed set-point, rpm

POWER_ALARMS = ("over_temperature", "over_current", "ac_input_lost", "psu_fault")
COOLING_ALARMS = ("leak", "pump_failed", "over_temperature", "fan_failed")


@dataclass(frozen=True, slots=True)
class Field:
    """One quantity in the map.

    Attributes:
        offset: Register address (relative to its block base for per-PSU fields).
        metric: Canonical metric name (SI unit in the name).
        scale: Register counts per SI unit (100 → 0.01 V per count).
        words: 1 (16-bit) or 2 (32-bit, high word first).
        signed: 16-bit two's complement.
    """

    offset: int
    metric: str
    scale: float = 1.0
    words: int = 1
    signed: bool = False


POWER_FIELDS = (
    Field(1, "dc_voltage_v", 100.0),
    Field(2, "dc_current_a", 10.0),
    Field(3, "output_power_w", 1.0, words=2),
    Field(5, "voltage_v", 10.0),
    Field(6, "temperature_c", 10.0, signed=True),
)
POWER_ALARM_REG = 7
PSU_COUNT_REG = 8

PSU_FIELDS = (
    Field(0, "available"),
    Field(1, "dc_current_a", 10.0),
    Field(2, "output_power_w", 1.0, words=2),
    Field(4, "temperature_c", 10.0, signed=True),
    Field(5, "dc_voltage_v", 100.0),
    Field(6, "ripple_v", 1000.0),
)

COOLING_FIELDS = (
    Field(1, "inlet_temp_c", 10.0, signed=True),
    Field(2, "outlet_temp_c", 10.0, signed=True),
    Field(3, "coolant_flow_lpm", 10.0),
    Field(4, "heat_w", 1.0, words=2),
)
COOLING_ALARM_REG = 6
LEAK_COUNT_REG = 7
FAN_COUNT_REG = 8
PUMP_COUNT_REG = 9


def _na(field: Field) -> int:
    """The "not available" code of a field: all ones, or -32768 for signed registers."""
    return 0xFFFFFFFF if field.words == 2 else 0x8000 if field.signed else 0xFFFF


def decode(field: Field, registers: Sequence[int], base: int = 0) -> float | None:
    """SI value of ``field`` from a register image starting at address 0 (``None`` = not available)."""
    at = base + field.offset
    raw = (registers[at] << 16) | registers[at + 1] if field.words == 2 else registers[at]
    if raw == _na(field):
        return None
    if field.signed and raw >= 0x8000:
        raw -= 0x10000
    return raw / field.scale


def encode(field: Field, value_si: float | None, image: list[int], base: int = 0) -> None:
    """Write ``value_si`` into a register image (clamped to the range; ``None`` → not available)."""
    at = base + field.offset
    if value_si is None:
        na = _na(field)
        if field.words == 2:
            image[at], image[at + 1] = na >> 16, na & 0xFFFF
        else:
            image[at] = na
        return
    raw = round(value_si * field.scale)
    if field.words == 2:
        raw = min(max(raw, 0), 0xFFFFFFFE)
        image[at], image[at + 1] = raw >> 16, raw & 0xFFFF
        return
    lo, hi = (-0x7FFF, 0x7FFF) if field.signed else (0, 0xFFFE)
    raw = min(max(raw, lo), hi)
    image[at] = raw & 0xFFFF


def alarm_names(mask: int, names: Sequence[str]) -> list[str]:
    """Names of the set bits of an alarm register."""
    return [name for bit, name in enumerate(names) if mask & (1 << bit)]


def alarm_mask(active: Mapping[str, bool], names: Sequence[str]) -> int:
    """Alarm register value from named flags."""
    return sum(1 << bit for bit, name in enumerate(names) if active.get(name))
