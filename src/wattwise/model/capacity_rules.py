"""Capacity warnings: power devices and cooling that cannot carry the connected peak.

Many sites oversubscribe on purpose (servers rarely all peak at once), so these are warnings:
the site loads, and the operator sees where a simultaneous peak would trip or overheat.
Power: the connected peak (each load split equally over its PSUs, conversion losses left
out) summed up the chain through each ATS's preferred source, against ``capacity_w``.
Cooling: the summed server peak of a rack against its ``cooling_capacity_w``, and of the
racks a racklet cools against its cooling module's ``capacity_w``.

>>> raw = {"racks": [{"id": "r", "cooling_capacity_w": 100}],
...        "servers": [{"id": "s", "rack": "r", "peak_w": 150}]}
>>> problems = []
>>> check_capacity(raw, Index(), {}, problems)
>>> [f"{p.path} [{p.rule}]" for p in problems]
['racks[0].cooling_capacity_w [cooling-short]']
"""

from __future__ import annotations

from collections.abc import Mapping

from wattwise.model.problems import Problem, Severity
from wattwise.model.rule_index import Index, entries, num

_RACK_COOLING_DEFAULT_W = 20_000.0  # site.Rack.cooling_capacity_w
_RACKLET_COOLING_DEFAULT_W = 30_000.0  # site.RackletCooling.capacity_w


def _parents(raw: Mapping[str, object]) -> dict[str, str]:
    """Device → the device feeding it now (an ATS: its preferred source)."""
    parent: dict[str, str] = {}
    for key, field in (("pdus", "input"), ("ups", "input"), ("ats", "preferred_source")):
        for _, item in entries(raw, key):
            ident, up = item.get("id"), item.get(field)
            if isinstance(ident, str) and isinstance(up, str):
                parent[ident] = up
    return parent


def _device_loads_w(raw: Mapping[str, object], index: Index, outlet_peak_w: Mapping[str, float]) -> dict[str, float]:
    """Connected peak of every PDU, UPS, ATS and feed, W (PDUs first, then level by level)."""
    load_w: dict[str, float] = {}
    for outlet, w in outlet_peak_w.items():
        pdu = index.outlet_pdu.get(outlet)
        if pdu is not None:
            load_w[pdu] = load_w.get(pdu, 0.0) + w
    parent = _parents(raw)
    for key in ("pdus", "ups", "ats"):
        for _, item in entries(raw, key):
            ident = item.get("id")
            up = parent.get(ident) if isinstance(ident, str) else None
            if up is not None and up != ident:
                load_w[up] = load_w.get(up, 0.0) + load_w.get(str(ident), 0.0)
    return load_w


def _check_power_capacity(
    raw: Mapping[str, object], index: Index, outlet_peak_w: Mapping[str, float], problems: list[Problem]
) -> None:
    load_w = _device_loads_w(raw, index, outlet_peak_w)
    for key in ("feeds", "ats", "ups"):
        for i, item in entries(raw, key):
            cap_w, ident = num(item, "capacity_w"), item.get("id")
            peak_w = load_w.get(ident, 0.0) if isinstance(ident, str) else 0.0
            if cap_w > 0 and peak_w > cap_w:
                msg = f"connected peak {peak_w:.0f} W exceeds capacity {cap_w:.0f} W (oversubscribed)"
                problems.append(Problem(f"{key}[{i}].capacity_w", "oversubscribed", msg, Severity.WARNING))


def _check_cooling(raw: Mapping[str, object], problems: list[Problem]) -> None:
    heat_w: dict[str, float] = {}
    for _, server in entries(raw, "servers"):
        rack = server.get("rack")
        if isinstance(rack, str):
            heat_w[rack] = heat_w.get(rack, 0.0) + num(server, "peak_w")
    racklet_heat_w: dict[str, float] = {}
    for i, rack in entries(raw, "racks"):
        ident, racklet = rack.get("id"), rack.get("racklet")
        rack_w = heat_w.get(ident, 0.0) if isinstance(ident, str) else 0.0
        cap_w = num(rack, "cooling_capacity_w", _RACK_COOLING_DEFAULT_W)
        if rack_w > cap_w:
            msg = f"server peak {rack_w:.0f} W exceeds rack cooling {cap_w:.0f} W"
            problems.append(Problem(f"racks[{i}].cooling_capacity_w", "cooling-short", msg, Severity.WARNING))
        if isinstance(racklet, str):
            racklet_heat_w[racklet] = racklet_heat_w.get(racklet, 0.0) + rack_w
    for i, racklet in entries(raw, "racklets"):
        ident, cooling = racklet.get("id"), racklet.get("cooling", {})
        if not isinstance(cooling, dict):
            continue  # pydantic reports it
        rl_w = racklet_heat_w.get(ident, 0.0) if isinstance(ident, str) else 0.0
        cap_w = num(cooling, "capacity_w", _RACKLET_COOLING_DEFAULT_W)
        if rl_w > cap_w:
            msg = f"peak of the racks it cools {rl_w:.0f} W exceeds its cooling module's {cap_w:.0f} W"
            problems.append(Problem(f"racklets[{i}].cooling.capacity_w", "cooling-short", msg, Severity.WARNING))


def check_capacity(
    raw: Mapping[str, object], index: Index, outlet_peak_w: Mapping[str, float], problems: list[Problem]
) -> None:
    """Append oversubscription and cooling warnings to ``problems``.

    Args:
        raw: The parsed site file.
        index: Ids and outlet → PDU map from :func:`wattwise.model.rule_index.build_index`.
        outlet_peak_w: Connected peak per outlet id, W (from :func:`wattwise.model.power_rules.check_power`).
        problems: Where to append.
    """
    _check_power_capacity(raw, index, outlet_peak_w, problems)
    _check_cooling(raw, problems)
