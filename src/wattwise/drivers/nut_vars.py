"""NUT variables → wattwise readings: names, units and ``ups.status`` flags, converted once here.

``ups.status`` words become ``ups_status_flags`` with the bits of
:class:`wattwise.model.ups_status.UpsStatus` (re-exported here); ``input.L1.current`` and
``input.L1.realpower`` (ePDUs, three-phase UPSes) become ``current_l1_a`` and ``power_l1_w``.

Unparsable values are reported per variable (:class:`VarProblem`), never fatal for the poll:
real devices (see the nut-ddl dumps) report ``battery.charge: 255``, empty strings, or
vendor text where a number belongs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from wattwise.model.metrics import phase_current_metric, phase_power_metric
from wattwise.model.ups_status import UpsStatus, on_battery
from wattwise.model.values import Quality, Reading
from wattwise.units import pct_to_frac

__all__ = ["NutVarParser", "UpsStatus", "VarProblem", "default_outlet_id", "parse_status"]


@dataclass(frozen=True, slots=True)
class VarProblem:
    """One variable whose value could not be turned into a reading.

    Attributes:
        var: The NUT variable name.
        raw: Its raw value.
        why: What was wrong.
    """

    var: str
    raw: str
    why: str


def parse_status(raw: str) -> tuple[int, list[str]]:
    """Parse ``ups.status`` into a bitmask and the list of unknown tokens.

    >>> parse_status("OB LB")
    (6, [])
    """
    mask = 0
    unknown: list[str] = []
    for token in raw.split():
        flag = UpsStatus.__members__.get(token.upper())
        if flag is None:
            unknown.append(token)
        else:
            mask |= int(flag)
    return mask, unknown


_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


def _number(raw: str) -> float:
    if not _NUMBER.match(raw):
        raise ValueError(f"not a number: {raw!r}")
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"not finite: {raw!r}")
    return value


def _ident(value: float) -> float:
    return value


# NUT variable → (metric, conversion to SI, tags).
_DEVICE_VARS: dict[str, tuple[str, Callable[[float], float], tuple[tuple[str, str], ...]]] = {
    "battery.charge": ("battery_charge_frac", pct_to_frac, ()),
    "battery.runtime": ("battery_runtime_s", _ident, ()),
    "battery.voltage": ("battery_voltage_v", _ident, ()),
    # Not temperature_c: a UPS reporting ups.temperature too would give two readings of one key.
    "battery.temperature": ("battery_temperature_c", _ident, ()),
    "ups.load": ("load_frac", pct_to_frac, ()),
    "ups.power": ("apparent_power_va", _ident, ()),
    "ups.realpower.nominal": ("capacity_w", _ident, ()),
    "ups.temperature": ("temperature_c", _ident, ()),
    "ups.efficiency": ("efficiency_frac", pct_to_frac, ()),
    "input.voltage": ("voltage_v", _ident, ()),
    "input.current": ("current_a", _ident, ()),
    "input.frequency": ("frequency_hz", _ident, ()),
    "input.realpower": ("input_power_w", _ident, ()),
    "output.realpower": ("output_power_w", _ident, ()),
    "ambient.temperature": ("ambient_temp_c", _ident, ()),
    "ambient.humidity": ("humidity_frac", pct_to_frac, ()),
}

_OUTLET_VARS: dict[str, tuple[str, Callable[[float], float]]] = {
    "realpower": ("power_w", _ident),
    "power": ("apparent_power_va", _ident),
    "current": ("current_a", _ident),
    "voltage": ("voltage_v", _ident),
}

_OUTLET = re.compile(r"^outlet\.(\d+)\.(.+)$")
_PHASE = re.compile(r"^input\.(L([1-3]))\.(current|realpower)$")


def default_outlet_id(device_id: str, outlet: int) -> str:
    """Device id of outlet ``outlet`` of a NUT device when the site names none (``pdu1.outlet3``)."""
    return f"{device_id}.outlet{outlet}"


class NutVarParser:
    """Turns one ``LIST VAR`` answer into readings (SI units) and per-variable problems.

    Args:
        device_id: Site id of the UPS/ePDU/ATS.
        outlet_ids: Site ids of outlets by NUT outlet number; missing ones get
            :func:`default_outlet_id`.
    """

    def __init__(self, device_id: str, outlet_ids: Mapping[int, str] | None = None) -> None:
        self.device_id = device_id
        self.outlet_ids = dict(outlet_ids or {})
        self.device_type = "ups"

    def outlet_id(self, outlet: int) -> str:
        """Site id of a NUT outlet number."""
        return self.outlet_ids.get(outlet) or default_outlet_id(self.device_id, outlet)

    def parse(self, variables: Mapping[str, str], t_s: float) -> tuple[list[Reading], list[VarProblem]]:
        """Map NUT variables to readings.

        Returns:
            The readings and the variables that could not be parsed.
        """
        readings: list[Reading] = []
        problems: list[VarProblem] = []
        self.device_type = variables.get("device.type", "ups").strip().lower() or "ups"
        for var, raw in variables.items():
            try:
                readings.extend(self._one(var, raw, t_s))
            except ValueError as err:
                problems.append(VarProblem(var, raw, str(err)))
        return readings, problems

    def _one(self, var: str, raw: str, t_s: float) -> list[Reading]:
        if var == "ups.status":
            return self._status(raw, t_s)
        if var == "ups.realpower":
            # A UPS reports its output load here; an ePDU or ATS what flows through it.
            metric = "output_power_w" if self.device_type == "ups" else "power_w"
            return [Reading(self.device_id, metric, _number(raw), t_s)]
        if (phase := _PHASE.match(var)) is not None:
            # One metric per phase: input.L1..L3.* of one poll share (device, t_s).
            n = int(phase.group(2))
            metric = phase_current_metric(n) if phase.group(3) == "current" else phase_power_metric(n)
            return [Reading(self.device_id, metric, _number(raw), t_s, tags=(("phase", phase.group(1)),))]
        if var == "input.source":
            # ATS: NUT numbers sources from 1; wattwise from 0.
            return [Reading(self.device_id, "ats_source_index", _number(raw) - 1.0, t_s)]
        spec = _DEVICE_VARS.get(var)
        if spec is not None:
            metric, convert, tags = spec
            return [Reading(self.device_id, metric, convert(_number(raw)), t_s, tags=tags)]
        match = _OUTLET.match(var)
        if match is None:
            return []
        return self._outlet(int(match.group(1)), match.group(2), raw, t_s)

    def _status(self, raw: str, t_s: float) -> list[Reading]:
        mask, unknown = parse_status(raw)
        if unknown and not mask:
            raise ValueError(f"no known ups.status flag in {raw!r}")
        quality = Quality.UNCERTAIN if unknown else Quality.GOOD
        return [
            Reading(self.device_id, "ups_status_flags", float(mask), t_s, quality),
            Reading(self.device_id, "on_battery", float(on_battery(mask)), t_s, quality),
            Reading(self.device_id, "low_battery", float(bool(mask & UpsStatus.LB)), t_s, quality),
        ]

    def _outlet(self, outlet: int, leaf: str, raw: str, t_s: float) -> list[Reading]:
        if outlet == 0:
            return []  # outlet.0 is the whole unit in some drivers; the device vars cover it
        oid = self.outlet_id(outlet)
        if leaf == "status":
            # bcmxcp reports "On/Closed" and "Off/Open".
            state = raw.strip().lower().split("/", 1)[0]
            if state not in {"on", "off"}:
                raise ValueError(f"outlet status {raw!r} is neither on nor off")
            return [Reading(oid, "outlet_on", 1.0 if state == "on" else 0.0, t_s)]
        spec = _OUTLET_VARS.get(leaf)
        if spec is None:
            return []
        metric, convert = spec
        return [Reading(oid, metric, convert(_number(raw)), t_s)]
