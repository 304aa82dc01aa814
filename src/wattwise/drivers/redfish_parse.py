"""Redfish resources → wattwise readings, by ``@odata.type``; units converted once, here.

Schemas covered: PowerSupply and PowerSupplyMetrics (PowerSubsystem), legacy Power and
Thermal, Control (power limits and PSU set-points), Sensor, EnvironmentMetrics,
PowerDistributionMetrics, Outlet, Circuit (mains/branches), CoolingUnit and LeakDetector.

Reading identity: telemetry and the store key a reading on (device, metric, time), so the
readings of one poll never differ by a tag alone. Where several sensors of one device report
the same kind of quantity:

* A sensor with a canonical meaning for its device gets the canonical metric: PhysicalContext
  ``Intake`` → ``inlet_temp_c``, ``Exhaust`` → ``outlet_temp_c``, ``Room`` → ``ambient_temp_c``
  (and ``Room`` humidity → ``humidity_frac``), on the chassis.
* Legacy Thermal lists all of a chassis' temperatures and fans in one resource, so they are
  aggregated: per canonical metric above the hottest sensor, every other temperature (CPU,
  memory, board, ...) as the chassis' ``temperature_c`` (its hottest part), and the slowest
  fan as ``fan_speed_rpm`` (0 as soon as one fan stops).
* Any other member of a Sensors collection (a CPU or DIMM temperature, a PSU rail, an outlet's
  current, a coolant loop's flow) measures a part of the device: it is the sub-device
  ``<device>/<sensor Id>``, like a PSU or an outlet, with the metric of its ReadingType
  (``LiquidInlet``/``LiquidOutlet`` temperatures as ``inlet_temp_c``/``outlet_temp_c``). The
  site model must name such a sub-device for telemetry to accept its readings.
* A circuit (a PDU's or power shelf's mains input, a branch) is the sub-device
  ``<device>/<circuit Id>``, like an outlet.

A quantity reported by two resources of one chassis (EnvironmentMetrics ``TemperatureCelsius``
and the legacy Thermal, an Intake sensor in both the legacy Thermal and the Sensors
collection) yields the same (device, metric): the driver keeps one reading per key.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from wattwise.model.values import Reading

Json = dict[str, Any]
Tags = tuple[tuple[str, str], ...]

KWH_TO_J = 3.6e6

# Sensor.ReadingType → (metric, scale to SI)
_SENSOR_TYPES: dict[str, tuple[str, float]] = {
    "Power": ("power_w", 1.0),
    "Temperature": ("temperature_c", 1.0),
    "Voltage": ("voltage_v", 1.0),
    "Current": ("current_a", 1.0),
    "Frequency": ("frequency_hz", 1.0),
    "Humidity": ("humidity_frac", 0.01),
    "EnergykWh": ("energy_j", KWH_TO_J),
    "LiquidFlowLPM": ("coolant_flow_lpm", 1.0),
    "Rotational": ("fan_speed_rpm", 1.0),
}

# Excerpt properties ({"Reading": x}) shared by several metrics schemas → (metric, scale)
_EXCERPTS: dict[str, tuple[str, float]] = {
    "PowerWatts": ("power_w", 1.0),
    "InputPowerWatts": ("input_power_w", 1.0),
    "OutputPowerWatts": ("output_power_w", 1.0),
    "InputVoltage": ("voltage_v", 1.0),
    "Voltage": ("voltage_v", 1.0),
    "InputCurrentAmps": ("current_a", 1.0),
    "CurrentAmps": ("current_a", 1.0),
    "FrequencyHz": ("frequency_hz", 1.0),
    "TemperatureCelsius": ("temperature_c", 1.0),
    "HumidityPercent": ("humidity_frac", 0.01),
    "EnergykWh": ("energy_j", KWH_TO_J),
}


def odata_type(resource: Json) -> str:
    """Schema name of a resource: ``#Outlet.v1_4_4.Outlet`` → ``Outlet``."""
    raw = str(resource.get("@odata.type", ""))
    return raw.lstrip("#").split(".", 1)[0]


def link(resource: Json, key: str) -> str | None:
    """``resource[key]["@odata.id"]`` when present."""
    value = resource.get(key)
    if isinstance(value, dict) and isinstance(value.get("@odata.id"), str):
        return str(value["@odata.id"])
    return None


def members(collection: Json) -> list[str]:
    """Member links of a collection."""
    return [str(m["@odata.id"]) for m in collection.get("Members", []) if isinstance(m, dict) and "@odata.id" in m]


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _excerpt(value: object) -> float | None:
    return _num(value.get("Reading")) if isinstance(value, dict) else None


def status_available(resource: Json) -> float | None:
    """1 when ``Status.State`` is Enabled, 0 when Absent/Disabled/UnavailableOffline, else None."""
    state = resource.get("Status", {}).get("State") if isinstance(resource.get("Status"), dict) else None
    if state == "Enabled":
        return 1.0
    if state in {"Absent", "Disabled", "UnavailableOffline", "StandbyOffline"}:
        return 0.0
    return None


def _r(device_id: str, metric: str, value: float | None, t_s: float, tags: Tags = ()) -> Iterator[Reading]:
    if value is not None:
        yield Reading(device_id, metric, value, t_s, tags=tags)


def excerpts(resource: Json, device_id: str, t_s: float, tags: Tags = ()) -> Iterator[Reading]:
    """Readings from ``{"Reading": x}`` excerpt properties (metrics resources, outlets, circuits).

    A ``("circuit", Id)`` tag names a circuit of the device: its readings are those of the
    sub-device ``<device_id>/<Id>`` (a power shelf's mains inputs each carry power, voltage,
    current and frequency, as its outlets do).
    """
    circuit = dict(tags).get("circuit")
    if circuit:
        device_id, tags = f"{device_id}/{circuit}", tuple(t for t in tags if t[0] != "circuit")
    for key, (metric, scale) in _EXCERPTS.items():
        value = _excerpt(resource.get(key))
        yield from _r(device_id, metric, None if value is None else value * scale, t_s, tags)


def parse_power_supply(resource: Json, device_id: str, t_s: float) -> Iterator[Reading]:
    """PowerSupply (PowerSubsystem): capacity and availability."""
    yield from _r(device_id, "capacity_w", _num(resource.get("PowerCapacityWatts")), t_s)
    yield from _r(device_id, "available", status_available(resource), t_s)


def parse_outlet(resource: Json, device_id: str, t_s: float) -> Iterator[Reading]:
    """Outlet: switched state and metering."""
    state = resource.get("PowerState")
    if state in {"On", "Off"}:
        yield Reading(device_id, "outlet_on", 1.0 if state == "On" else 0.0, t_s)
    yield from excerpts(resource, device_id, t_s)


# Sensor/Thermal PhysicalContext of a chassis' own environment → canonical metric of the chassis
_CHASSIS_TEMPERATURES = {"Intake": "inlet_temp_c", "Exhaust": "outlet_temp_c", "Room": "ambient_temp_c"}
# PhysicalContext of a part's temperature sensor → metric of that part's sub-device
_PART_TEMPERATURES = {**_CHASSIS_TEMPERATURES, "LiquidInlet": "inlet_temp_c", "LiquidOutlet": "outlet_temp_c"}
# Sensor.ReadingUnits → ReadingType, for services that leave ReadingType out
_UNIT_TYPES = {"Cel": "Temperature", "C": "Temperature", "RPM": "Rotational", "L/min": "LiquidFlowLPM"}


def sensor_identity(resource: Json, device_id: str) -> tuple[str, str, float] | None:
    """Device id, metric and scale to SI of a Sensor resource (see the module docstring).

    >>> sensor_identity({"Id": "IntakeTemp", "ReadingType": "Temperature", "PhysicalContext": "Intake"}, "srv")
    ('srv', 'inlet_temp_c', 1.0)
    >>> sensor_identity({"Id": "CPU1Temp", "ReadingUnits": "Cel", "PhysicalContext": "CPU"}, "srv")
    ('srv/CPU1Temp', 'temperature_c', 1.0)

    Returns:
        None for a reading type wattwise has no metric for (pressure, percent, heat).
    """
    kind = resource.get("ReadingType") or _UNIT_TYPES.get(str(resource.get("ReadingUnits", "")))
    spec = _SENSOR_TYPES.get(str(kind))
    if spec is None:
        return None
    metric, scale = spec
    context = str(resource.get("PhysicalContext", ""))
    if metric == "temperature_c" and context in _CHASSIS_TEMPERATURES:
        return device_id, _CHASSIS_TEMPERATURES[context], scale
    if metric == "humidity_frac" and context == "Room":
        return device_id, metric, scale
    part = str(resource.get("Id") or str(resource.get("@odata.id", "")).rstrip("/").rsplit("/", 1)[-1])
    if metric == "temperature_c":
        metric = _PART_TEMPERATURES.get(context, metric)
    return f"{device_id}/{part}", metric, scale


def parse_sensor(resource: Json, device_id: str, t_s: float) -> Iterator[Reading]:
    """Sensor: one value, under the chassis' canonical metric or as a sub-device (:func:`sensor_identity`)."""
    identity = sensor_identity(resource, device_id)
    value = _num(resource.get("Reading"))
    if identity is not None and value is not None:
        yield Reading(identity[0], identity[1], value * identity[2], t_s)


def parse_legacy_power(resource: Json, device_id: str, t_s: float, psu_ids: dict[str, str]) -> Iterator[Reading]:
    """Legacy Power: chassis consumption and limit, and PowerSupplies entries."""
    controls = resource.get("PowerControl") or []
    if controls and isinstance(controls[0], dict):
        yield from _r(device_id, "power_w", _num(controls[0].get("PowerConsumedWatts")), t_s)
        limit = controls[0].get("PowerLimit")
        if isinstance(limit, dict):
            yield from _r(device_id, "power_cap_w", _num(limit.get("LimitInWatts")), t_s)
    for psu in resource.get("PowerSupplies") or []:
        if not isinstance(psu, dict):
            continue
        name = str(psu.get("MemberId") or psu.get("Name") or "")
        pid = psu_ids.get(name, f"{device_id}/{name}")
        yield from _r(pid, "capacity_w", _num(psu.get("PowerCapacityWatts")), t_s)
        yield from _r(pid, "input_power_w", _num(psu.get("PowerInputWatts")), t_s)
        out = _num(psu.get("PowerOutputWatts")) or _num(psu.get("LastPowerOutputWatts"))
        yield from _r(pid, "output_power_w", out, t_s)
        yield from _r(pid, "voltage_v", _num(psu.get("LineInputVoltage")), t_s)
        yield from _r(pid, "available", status_available(psu), t_s)


def parse_legacy_thermal(resource: Json, device_id: str, t_s: float) -> Iterator[Reading]:
    """Legacy Thermal: the hottest temperature per canonical metric, and the slowest fan.

    Intake, Exhaust and Room temperatures become ``inlet_temp_c``, ``outlet_temp_c`` and
    ``ambient_temp_c``; any other (CPU, memory, board) counts towards ``temperature_c``.
    """
    hottest: dict[str, float] = {}
    for temp in resource.get("Temperatures") or []:
        value = _num(temp.get("ReadingCelsius")) if isinstance(temp, dict) else None
        if value is not None:
            metric = _CHASSIS_TEMPERATURES.get(str(temp.get("PhysicalContext", "")), "temperature_c")
            hottest[metric] = max(value, hottest.get(metric, value))
    for metric, value in hottest.items():
        yield Reading(device_id, metric, value, t_s)
    speeds = [
        v
        for fan in resource.get("Fans") or []
        if isinstance(fan, dict)
        and fan.get("ReadingUnits", "RPM") == "RPM"
        and (v := _num(fan.get("Reading"))) is not None
    ]
    if speeds:
        yield Reading(device_id, "fan_speed_rpm", min(speeds), t_s)


def parse_leak_detector(resource: Json, device_id: str, t_s: float) -> Iterator[Reading]:
    """LeakDetector: 1 when its state is not OK."""
    state = resource.get("DetectorState")
    if state in {"OK", "Warning", "Critical"}:
        tags = (("detector", str(resource.get("Id", ""))),)
        yield Reading(device_id, "leak_detected", 0.0 if state == "OK" else 1.0, t_s, tags=tags)


def parse_control(resource: Json, device_id: str, t_s: float, *, psu: bool) -> Iterator[Reading]:
    """Control of type Power: a PSU output set-point or a power limit."""
    if resource.get("ControlType") != "Power":
        return
    yield from _r(device_id, "setpoint_w" if psu else "power_cap_w", _num(resource.get("SetPoint")), t_s)


def expand_levels(root: Json) -> int:
    """How deep the service expands subordinate links in one request (0: no ``$expand=.``).

    Read from the service root's ``ProtocolFeaturesSupported.ExpandQuery``: ``NoLinks`` (the
    ``.`` form) is required; ``Levels`` with ``MaxLevels`` allows ``$levels=n``, else one level.
    """
    features = root.get("ProtocolFeaturesSupported")
    query = features.get("ExpandQuery") if isinstance(features, dict) else None
    if not isinstance(query, dict) or query.get("NoLinks") is not True:
        return 0
    if query.get("Levels") is not True:
        return 1
    most = query.get("MaxLevels")
    return most if isinstance(most, int) and not isinstance(most, bool) and most >= 1 else 1
