"""Cross-reference rules of a site, checked on the raw mapping so every problem is found at once.

Field-level checks (types, ranges, unknown keys) are pydantic's; these rules need the whole
graph: unique and resolvable ids, acyclic dependencies, redundancy the wiring can meet,
breakers that cover their connected peak load, tier ordering of dependencies.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from wattwise.model.problems import Problem, Severity

_TIER_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
_BREAKER_DERATE_FRAC = 0.8


def _items(raw: Mapping[str, object], key: str) -> Iterator[tuple[str, dict[str, object]]]:
    value = raw.get(key)
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict):
                yield f"{key}[{i}]", item


def _num(item: Mapping[str, object], key: str, default: float = 0.0) -> float:
    value = item.get(key, default)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


@dataclass
class _Index:
    """Ids of every kind, and where each was first defined."""

    kind_of: dict[str, str] = field(default_factory=dict)
    path_of: dict[str, str] = field(default_factory=dict)
    outlet_pdu: dict[str, str] = field(default_factory=dict)
    upstream: dict[str, list[str]] = field(default_factory=dict)


def _register(index: _Index, problems: list[Problem], ident: object, kind: str, path: str) -> None:
    if not isinstance(ident, str):
        return
    if ident in index.kind_of:
        problems.append(
            Problem(f"{path}.id", "duplicate-id", f"id {ident!r} is already used at {index.path_of[ident]}")
        )
        return
    index.kind_of[ident] = kind
    index.path_of[ident] = path


def _build_index(raw: Mapping[str, object], problems: list[Problem]) -> _Index:
    index = _Index()
    for key, kind in (("feeds", "feed"), ("ats", "ats"), ("ups", "ups"), ("racklets", "racklet"), ("racks", "rack")):
        for path, item in _items(raw, key):
            _register(index, problems, item.get("id"), kind, path)
    for path, pdu in _items(raw, "pdus"):
        _register(index, problems, pdu.get("id"), "pdu", path)
        outlets = pdu.get("outlets")
        for j, outlet in enumerate(outlets if isinstance(outlets, list) else []):
            if isinstance(outlet, dict):
                _register(index, problems, outlet.get("id"), "outlet", f"{path}.outlets[{j}]")
                if isinstance(outlet.get("id"), str) and isinstance(pdu.get("id"), str):
                    index.outlet_pdu[str(outlet["id"])] = str(pdu["id"])
    for path, server in _items(raw, "servers"):
        _register(index, problems, server.get("id"), "server", path)
        for ppath, psu in _psus(server, path):
            _register(index, problems, psu.get("id"), "psu", ppath)
    for path, racklet in _items(raw, "racklets"):
        power = racklet.get("power")
        if isinstance(power, dict):
            for ppath, psu in _psus(power, f"{path}.power"):
                _register(index, problems, psu.get("id"), "psu", ppath)
    for key, kind in (("services", "service"), ("workloads", "workload"), ("event_processors", "processor")):
        for path, item in _items(raw, key):
            _register(index, problems, item.get("id"), kind, path)
    _build_upstream(raw, index)
    return index


def _psus(owner: Mapping[str, object], path: str) -> Iterator[tuple[str, dict[str, object]]]:
    psus = owner.get("psus")
    for k, psu in enumerate(psus if isinstance(psus, list) else []):
        if isinstance(psu, dict):
            yield f"{path}.psus[{k}]", psu


def _build_upstream(raw: Mapping[str, object], index: _Index) -> None:
    for _, ats in _items(raw, "ats"):
        sources = ats.get("sources")
        if isinstance(ats.get("id"), str) and isinstance(sources, list):
            index.upstream[str(ats["id"])] = [s for s in sources if isinstance(s, str)]
    for key in ("ups", "pdus"):
        for _, item in _items(raw, key):
            if isinstance(item.get("id"), str) and isinstance(item.get("input"), str):
                index.upstream[str(item["id"])] = [str(item["input"])]
    for outlet, pdu in index.outlet_pdu.items():
        index.upstream[outlet] = [pdu]


def _ref(
    index: _Index, problems: list[Problem], value: object, allowed: tuple[str, ...], path: str, what: str
) -> None:
    if not isinstance(value, str):
        return
    kind = index.kind_of.get(value)
    if kind is None:
        problems.append(Problem(path, "dangling-ref", f"{what} {value!r} does not exist"))
    elif kind not in allowed:
        problems.append(Problem(path, "dangling-ref", f"{what} {value!r} is a {kind}, expected {' or '.join(allowed)}"))


def _check_refs(raw: Mapping[str, object], index: _Index, problems: list[Problem]) -> None:
    for path, ats in _items(raw, "ats"):
        sources = ats.get("sources")
        for j, src in enumerate(sources if isinstance(sources, list) else []):
            _ref(index, problems, src, ("feed",), f"{path}.sources[{j}]", "source")
    for path, ups in _items(raw, "ups"):
        _ref(index, problems, ups.get("input"), ("feed", "ats"), f"{path}.input", "input")
    for path, pdu in _items(raw, "pdus"):
        _ref(index, problems, pdu.get("input"), ("feed", "ats", "ups"), f"{path}.input", "input")
    for path, rack in _items(raw, "racks"):
        _ref(index, problems, rack.get("racklet"), ("racklet",), f"{path}.racklet", "racklet")
    for path, server in _items(raw, "servers"):
        _ref(index, problems, server.get("rack"), ("rack",), f"{path}.rack", "rack")
        for ppath, psu in _psus(server, path):
            _ref(index, problems, psu.get("input"), ("outlet",), f"{ppath}.input", "outlet")
    for path, racklet in _items(raw, "racklets"):
        power = racklet.get("power")
        if isinstance(power, dict):
            for ppath, psu in _psus(power, f"{path}.power"):
                _ref(index, problems, psu.get("input"), ("outlet",), f"{ppath}.input", "outlet")
    for path, svc in _items(raw, "services"):
        deps = svc.get("depends_on")
        for j, dep in enumerate(deps if isinstance(deps, list) else []):
            _ref(index, problems, dep, ("service",), f"{path}.depends_on[{j}]", "dependency")
    for path, wl in _items(raw, "workloads"):
        _ref(index, problems, wl.get("service"), ("service",), f"{path}.service", "service")
        _ref(index, problems, wl.get("server"), ("server",), f"{path}.server", "server")
    for path, proc in _items(raw, "event_processors"):
        _ref(index, problems, proc.get("server"), ("server",), f"{path}.server", "server")


def _check_cycles(raw: Mapping[str, object], problems: list[Problem]) -> None:
    deps: dict[str, list[str]] = {}
    where: dict[str, str] = {}
    for path, svc in _items(raw, "services"):
        if isinstance(svc.get("id"), str):
            raw_deps = svc.get("depends_on")
            deps[str(svc["id"])] = [d for d in (raw_deps if isinstance(raw_deps, list) else []) if isinstance(d, str)]
            where[str(svc["id"])] = path
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
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
                cycle = [n for n, _ in stack][[n for n, _ in stack].index(child) :] + [child]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    msg = "dependency cycle: " + " -> ".join(cycle)
                    problems.append(Problem(f"{where[child]}.depends_on", "dependency-cycle", msg))
            elif child in deps and not state.get(child):
                state[child] = 1
                stack.append((child, iter(deps[child])))


def _roots(index: _Index, device: str) -> set[str]:
    """Every device upstream of ``device`` (itself included), following ATS to both sources."""
    seen: set[str] = set()
    todo = [device]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(index.upstream.get(node, []))
    return seen


def _check_redundancy(raw: Mapping[str, object], index: _Index, problems: list[Problem]) -> None:
    for path, server in _items(raw, "servers"):
        claim = server.get("redundancy", "N")
        psus = [p for _, p in _psus(server, path)]
        if claim == "N" or not psus:
            continue
        if len(psus) < 2:
            problems.append(Problem(f"{path}.redundancy", "redundancy-unmet", f"{claim} needs at least 2 PSUs"))
            continue
        peak_w = _num(server, "peak_w")
        ratings = sorted((_num(p, "rating_w") for p in psus), reverse=True)
        if claim == "N+1" and sum(ratings[1:]) < peak_w:
            problems.append(
                Problem(
                    f"{path}.redundancy",
                    "redundancy-unmet",
                    f"N+1: without its largest PSU the others give {sum(ratings[1:]):.0f} W < peak_w {peak_w:.0f} W",
                )
            )
        if claim == "2N":
            _check_two_n(path, server, psus, index, problems)


def _check_two_n(
    path: str, server: Mapping[str, object], psus: list[dict[str, object]], index: _Index, problems: list[Problem]
) -> None:
    chains = [_roots(index, str(p.get("input"))) for p in psus if isinstance(p.get("input"), str)]
    shared = set.intersection(*chains) if len(chains) >= 2 else set()
    shared = {d for d in shared if index.kind_of.get(d) in {"feed", "ats", "ups", "pdu"}}
    if shared:
        names = ", ".join(sorted(shared))
        problems.append(
            Problem(f"{path}.redundancy", "redundancy-unmet", f"2N but every PSU path goes through {names}")
        )
    peak_w = _num(server, "peak_w")
    if any(_num(p, "rating_w") < peak_w for p in psus):
        problems.append(
            Problem(f"{path}.redundancy", "redundancy-unmet", f"2N needs each PSU rated for peak_w {peak_w:.0f} W")
        )


def _check_breakers(raw: Mapping[str, object], index: _Index, problems: list[Problem]) -> None:
    outlet_peak_w: dict[str, float] = {}
    for path, server in _items(raw, "servers"):
        psus = [p for _, p in _psus(server, path)]
        if not psus:
            continue
        # Worst case: a partner PSU fails and one supply carries the whole peak.
        for psu in psus:
            if isinstance(psu.get("input"), str):
                key = str(psu["input"])
                outlet_peak_w[key] = outlet_peak_w.get(key, 0.0) + _num(server, "peak_w") / len(psus)
    for path, pdu in _items(raw, "pdus"):
        outlets = pdu.get("outlets")
        phases = int(_num(pdu, "phases", 1.0)) or 1
        per_phase = [0.0] * max(phases, 3)
        for outlet in outlets if isinstance(outlets, list) else []:
            if isinstance(outlet, dict) and isinstance(outlet.get("id"), str):
                ph = int(_num(outlet, "phase", 1.0))
                if 1 <= ph <= len(per_phase):
                    per_phase[ph - 1] += outlet_peak_w.get(str(outlet["id"]), 0.0)
        cap_w = _BREAKER_DERATE_FRAC * _num(pdu, "breaker_a") * _num(pdu, "voltage_v", 230.0)
        for ph, load_w in enumerate(per_phase, start=1):
            if cap_w > 0 and load_w > cap_w:
                problems.append(
                    Problem(
                        f"{path}.outlets",
                        "outlet-over-breaker",
                        f"phase {ph}: connected peak {load_w:.0f} W exceeds breaker {cap_w:.0f} W "
                        f"(80 % of {_num(pdu, 'breaker_a'):.0f} A x {_num(pdu, 'voltage_v', 230.0):.0f} V)",
                    )
                )


def _check_tiers(raw: Mapping[str, object], problems: list[Problem]) -> None:
    tier_of = {
        str(s["id"]): str(s.get("tier")) for _, s in _items(raw, "services") if isinstance(s.get("id"), str)
    }
    for path, svc in _items(raw, "services"):
        rank = _TIER_RANK.get(str(svc.get("tier")))
        deps = svc.get("depends_on")
        for j, dep in enumerate(deps if isinstance(deps, list) else []):
            dep_rank = _TIER_RANK.get(tier_of.get(str(dep), ""))
            if rank is not None and dep_rank is not None and dep_rank > rank:
                problems.append(
                    Problem(
                        f"{path}.depends_on[{j}]",
                        "depends-on-lower-tier",
                        f"{svc.get('tier')} service {svc.get('id')!r} depends on {tier_of[str(dep)]} service {dep!r};"
                        " it will be kept up with it during a power event",
                        Severity.WARNING,
                    )
                )


def check_site(raw: Mapping[str, object]) -> list[Problem]:
    """Every cross-reference problem of a raw site mapping (paths, no lines yet)."""
    problems: list[Problem] = []
    index = _build_index(raw, problems)
    _check_refs(raw, index, problems)
    _check_cycles(raw, problems)
    _check_redundancy(raw, index, problems)
    _check_breakers(raw, index, problems)
    _check_tiers(raw, problems)
    return problems
