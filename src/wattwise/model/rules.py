"""Cross-reference rules of a site, checked on the raw mapping so every problem is found at once.

Field-level checks (types, ranges, unknown keys) are pydantic's; these rules need the whole
graph: unique and resolvable ids, acyclic dependencies, redundancy the wiring can meet
(:mod:`wattwise.model.power_rules`), breakers that cover their connected peak load,
oversubscribed devices and short cooling (warnings, :mod:`wattwise.model.capacity_rules`),
tier ordering of dependencies, one owner per stream partition.

The rules run on the raw mapping rather than on the validated :class:`~wattwise.model.site.Site`
so that a file with a wrong type in one server still gets its dangling references reported.
Every rule skips values of the wrong type (pydantic reports those). YAML paths are only
formatted when a rule fails: a valid 100k-server site is checked in under two seconds.

>>> raw = {"id": "s", "feeds": [{"id": "f", "capacity_w": 1e5}],
...        "pdus": [{"id": "p", "input": "nowhere", "breaker_a": 16}]}
>>> [f"{p.path} [{p.rule}]" for p in check_site(raw)]
['pdus[0].input [dangling-ref]']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from wattwise.model.capacity_rules import check_capacity
from wattwise.model.power_rules import check_power
from wattwise.model.problems import Problem, Severity
from wattwise.model.rule_index import Index, Loc, build_index, entries, path_of, psu_entries

_TIER_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}

_FEED = ("feed",)
_UPS_INPUT = ("feed", "ats")
_PDU_INPUT = ("feed", "ats", "ups")


def _refs(raw: Mapping[str, object]) -> Iterator[tuple[object, tuple[str, ...], Loc, str]]:
    """(referenced id, allowed kinds, location, what) of every reference in the site."""
    for i, ats in entries(raw, "ats"):
        sources = ats.get("sources")
        for j, src in enumerate(sources if isinstance(sources, list) else ()):
            yield src, _FEED, ("ats", i, "sources", j), "source"
    for i, ups in entries(raw, "ups"):
        yield ups.get("input"), _UPS_INPUT, ("ups", i, "input"), "input"
    for i, pdu in entries(raw, "pdus"):
        yield pdu.get("input"), _PDU_INPUT, ("pdus", i, "input"), "input"
    for i, rack in entries(raw, "racks"):
        if rack.get("racklet") is not None:
            yield rack.get("racklet"), ("racklet",), ("racks", i, "racklet"), "racklet"
    for i, server in entries(raw, "servers"):
        yield server.get("rack"), ("rack",), ("servers", i, "rack"), "rack"
    for psu, loc in psu_entries(raw):
        yield psu.get("input"), ("outlet",), (*loc, "input"), "outlet"
    yield from _service_refs(raw)


def _service_refs(raw: Mapping[str, object]) -> Iterator[tuple[object, tuple[str, ...], Loc, str]]:
    for i, svc in entries(raw, "services"):
        deps = svc.get("depends_on")
        for j, dep in enumerate(deps if isinstance(deps, list) else ()):
            yield dep, ("service",), ("services", i, "depends_on", j), "dependency"
    for i, wl in entries(raw, "workloads"):
        yield wl.get("service"), ("service",), ("workloads", i, "service"), "service"
        yield wl.get("server"), ("server",), ("workloads", i, "server"), "server"
    for i, proc in entries(raw, "event_processors"):
        yield proc.get("server"), ("server",), ("event_processors", i, "server"), "server"


def _check_refs(raw: Mapping[str, object], index: Index, problems: list[Problem]) -> None:
    kind_of = index.kind_of
    for value, allowed, loc, what in _refs(raw):
        if not isinstance(value, str) or kind_of.get(value) in allowed:
            continue
        kind = kind_of.get(value)
        if kind is None:
            msg = f"{what} {value!r} does not exist"
        else:
            msg = f"{what} {value!r} is a {kind}, expected {' or '.join(allowed)}"
        problems.append(Problem(path_of(loc), "dangling-ref", msg))


def _dependency_graph(raw: Mapping[str, object]) -> tuple[dict[str, list[str]], dict[str, int]]:
    deps: dict[str, list[str]] = {}
    where: dict[str, int] = {}
    for i, svc in entries(raw, "services"):
        sid = svc.get("id")
        if isinstance(sid, str) and sid not in deps:
            raw_deps = svc.get("depends_on")
            deps[sid] = [d for d in (raw_deps if isinstance(raw_deps, list) else ()) if isinstance(d, str)]
            where[sid] = i
    return deps, where


def _check_cycles(raw: Mapping[str, object], problems: list[Problem]) -> None:
    """Name every service dependency cycle once (iterative DFS, no recursion limit)."""
    deps, where = _dependency_graph(raw)
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done
    reported: set[frozenset[str]] = set()
    for start in deps:
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(deps[start]))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                names = [n for n, _ in stack]
                cycle = [*names[names.index(child) :], child]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    msg = "dependency cycle: " + " -> ".join(cycle)
                    # Reported at the edge that closes the cycle.
                    problems.append(Problem(f"services[{where[node]}].depends_on", "dependency-cycle", msg))
            elif child in deps and not state.get(child):
                state[child] = 1
                stack.append((child, iter(deps[child])))


def _check_tiers(raw: Mapping[str, object], problems: list[Problem]) -> None:
    """Warn when a service depends on a less important one: it drags it along in a power event."""
    tier_of = {str(s["id"]): s.get("tier") for _, s in entries(raw, "services") if isinstance(s.get("id"), str)}
    for i, svc in entries(raw, "services"):
        rank = _TIER_RANK.get(str(svc.get("tier")))
        deps = svc.get("depends_on")
        for j, dep in enumerate(deps if isinstance(deps, list) else ()):
            dep_tier = tier_of.get(dep) if isinstance(dep, str) else None
            dep_rank = _TIER_RANK.get(str(dep_tier))
            if rank is not None and dep_rank is not None and dep_rank > rank:
                problems.append(
                    Problem(
                        f"services[{i}].depends_on[{j}]",
                        "depends-on-lower-tier",
                        f"{svc.get('tier')} service {svc.get('id')!r} depends on {dep_tier} service {dep!r};"
                        " it will be kept up with it during a power event",
                        Severity.WARNING,
                    )
                )


def _check_partitions(raw: Mapping[str, object], problems: list[Problem]) -> None:
    """A stream partition has exactly one owning event processor."""
    owner: dict[str, object] = {}
    for i, proc in entries(raw, "event_processors"):
        parts = proc.get("partitions")
        for j, part in enumerate(parts if isinstance(parts, list) else ()):
            if not isinstance(part, str):
                continue
            if part in owner:
                msg = f"partition {part!r} is already owned by {owner[part]!r}"
                problems.append(Problem(f"event_processors[{i}].partitions[{j}]", "duplicate-partition", msg))
            else:
                owner[part] = proc.get("id")


def check_site(raw: Mapping[str, object]) -> list[Problem]:
    """Every cross-reference problem of a raw site mapping (YAML paths, no lines yet).

    Args:
        raw: The parsed site file (any shape: parts of the wrong type are skipped).

    Returns:
        Problems in rule order: duplicate ids, dangling references, cycles, power rules,
        capacity warnings, partitions, tier warnings.
    """
    problems: list[Problem] = []
    index = build_index(raw, problems)
    _check_refs(raw, index, problems)
    _check_cycles(raw, problems)
    outlet_peak_w = check_power(raw, index, problems)
    check_capacity(raw, index, outlet_peak_w, problems)
    _check_partitions(raw, problems)
    _check_tiers(raw, problems)
    return problems
