"""The id index the site rules share: every id's kind, the power graph upward, and helpers.

Locations are tuples (``("servers", 3, "psus", 0, "input")``) that become YAML paths
(``servers[3].psus[0].input``) only when a rule fails, so checking a valid site formats no
strings per item.

>>> path_of(("servers", 3, "psus", 0, "input"))
'servers[3].psus[0].input'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from wattwise.model.problems import Problem

Loc = tuple[str | int, ...]

_TOP_KINDS = (
    ("feeds", "feed"),
    ("ats", "ats"),
    ("ups", "ups"),
    ("racklets", "racklet"),
    ("racks", "rack"),
)
_LATE_KINDS = (("services", "service"), ("workloads", "workload"), ("event_processors", "processor"))


def path_of(loc: Loc) -> str:
    """YAML path of a location tuple; ``<root>`` for the empty one."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "<root>"


def entries(raw: Mapping[str, object], key: str) -> list[tuple[int, dict[str, object]]]:
    """(position, item) of every mapping in the list ``raw[key]`` (nothing when not a list)."""
    value = raw.get(key)
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def num(item: Mapping[str, object], key: str, default: float = 0.0) -> float:
    """A numeric field as float, or ``default`` when absent or not a number."""
    value = item.get(key, default)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def psu_entries(raw: Mapping[str, object]) -> Iterator[tuple[dict[str, object], Loc]]:
    """(psu, location) of every PSU: servers' first, then racklet power modules'."""
    for i, server in entries(raw, "servers"):
        psus = server.get("psus")
        for k, psu in enumerate(psus if isinstance(psus, list) else ()):
            if isinstance(psu, dict):
                yield psu, ("servers", i, "psus", k)
    for i, racklet in entries(raw, "racklets"):
        power = racklet.get("power")
        psus = power.get("psus") if isinstance(power, dict) else None
        for k, psu in enumerate(psus if isinstance(psus, list) else ()):
            if isinstance(psu, dict):
                yield psu, ("racklets", i, "power", "psus", k)


@dataclass
class Index:
    """Ids of every kind and the power graph upward (memoized ancestor sets)."""

    kind_of: dict[str, str] = field(default_factory=dict)
    outlet_pdu: dict[str, str] = field(default_factory=dict)
    upstream: dict[str, list[str]] = field(default_factory=dict)
    roots: dict[str, frozenset[str]] = field(default_factory=dict)
    shared: dict[tuple[str, ...], frozenset[str]] = field(default_factory=dict)

    def ancestors(self, device: str) -> frozenset[str]:
        """``device`` and every device upstream of it, following an ATS to both sources."""
        cached = self.roots.get(device)
        if cached is not None:
            return cached
        seen: set[str] = set()
        outlet_pdu = self.outlet_pdu.get(device)
        todo = [device] if outlet_pdu is None else [device, outlet_pdu]
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(self.upstream.get(node, ()))
        result = frozenset(seen)
        self.roots[device] = result
        return result


def _ids(raw: Mapping[str, object]) -> Iterator[tuple[object, str, Loc]]:
    """(id, kind, location) of every identified thing in the site, in file order of kinds."""
    for key, kind in _TOP_KINDS:
        for i, item in entries(raw, key):
            yield item.get("id"), kind, (key, i)
    for i, pdu in entries(raw, "pdus"):
        yield pdu.get("id"), "pdu", ("pdus", i)
        outlets = pdu.get("outlets")
        for j, outlet in enumerate(outlets if isinstance(outlets, list) else ()):
            if isinstance(outlet, dict):
                yield outlet.get("id"), "outlet", ("pdus", i, "outlets", j)
    for i, server in entries(raw, "servers"):
        yield server.get("id"), "server", ("servers", i)
    for psu, loc in psu_entries(raw):
        yield psu.get("id"), "psu", loc
    for key, kind in _LATE_KINDS:
        for i, item in entries(raw, key):
            yield item.get("id"), kind, (key, i)


def build_index(raw: Mapping[str, object], problems: list[Problem]) -> Index:
    """Index every id; report each id defined twice (rule ``duplicate-id``) at its second place."""
    index = Index()
    kind_of = index.kind_of
    duplicates: list[tuple[str, Loc]] = []
    for ident, kind, loc in _ids(raw):
        if isinstance(ident, str):
            if ident in kind_of:
                duplicates.append((ident, loc))
            else:
                kind_of[ident] = kind
    if duplicates:
        _report_duplicates(raw, duplicates, problems)
    _build_upstream(raw, index)
    return index


def _report_duplicates(raw: Mapping[str, object], duplicates: list[tuple[str, Loc]], problems: list[Problem]) -> None:
    """Slow path, only for a broken file: find where each duplicated id was first defined."""
    wanted = {ident for ident, _ in duplicates}
    first: dict[str, Loc] = {}
    for ident, _, loc in _ids(raw):
        if ident in wanted and isinstance(ident, str) and ident not in first:
            first[ident] = loc
    for ident, loc in duplicates:
        msg = f"id {ident!r} is already used at {path_of(first[ident])}"
        problems.append(Problem(f"{path_of(loc)}.id", "duplicate-id", msg))


def _build_upstream(raw: Mapping[str, object], index: Index) -> None:
    for _, ats in entries(raw, "ats"):
        sources = ats.get("sources")
        if isinstance(ats.get("id"), str) and isinstance(sources, list):
            index.upstream[str(ats["id"])] = [s for s in sources if isinstance(s, str)]
    for key in ("ups", "pdus"):
        for _, item in entries(raw, key):
            if isinstance(item.get("id"), str) and isinstance(item.get("input"), str):
                index.upstream[str(item["id"])] = [str(item["input"])]
    for _, pdu in entries(raw, "pdus"):
        outlets = pdu.get("outlets")
        pdu_id = pdu.get("id")
        if not isinstance(pdu_id, str):
            continue
        for outlet in outlets if isinstance(outlets, list) else ():
            if isinstance(outlet, dict) and isinstance(outlet.get("id"), str):
                index.outlet_pdu[str(outlet["id"])] = pdu_id
