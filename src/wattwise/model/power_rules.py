"""Power-chain rules: redundancy the wiring can meet, breakers, a power path for every server.

A *fed load* is anything with its own PSUs: a server, or a racklet power module (whose load
is the summed peak of the PSU-less servers in the racks it feeds).

>>> raw = {"racks": [{"id": "r1"}], "servers": [{"id": "s1", "rack": "r1", "idle_w": 1, "peak_w": 2}]}
>>> problems = []
>>> _ = check_power(raw, Index(), problems)
>>> [f"{p.path} [{p.rule}]" for p in problems]
['servers[0].psus [no-power-path]']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NamedTuple

from wattwise.model.problems import Problem, Severity
from wattwise.model.rule_index import Index, Loc, entries, num, path_of

BREAKER_DERATE_FRAC = 0.8
"""Continuous load allowed on a breaker (NEC 80 % rule, IEC practice)."""

_UPSTREAM_KINDS = frozenset({"feed", "ats", "ups", "pdu"})


class _Fed(NamedTuple):
    """A load with its own PSUs; ``loc`` becomes a YAML path only when a rule fails.

    A NamedTuple, not a frozen dataclass: 100k of them are built per site and a frozen
    dataclass's ``__init__`` costs several times more.
    """

    loc: Loc
    claim: object
    peak_w: float
    psus: list[dict[str, object]]

    @property
    def where(self) -> str:
        """YAML path of the load's redundancy claim."""
        return path_of((*self.loc, "redundancy"))


def _psus(owner: Mapping[str, object]) -> list[dict[str, object]]:
    """The PSUs of a load, or none when any entry is not a mapping.

    Pydantic reports the odd entry; judging redundancy on the readable half would only add noise.
    """
    psus = owner.get("psus")
    if not isinstance(psus, list) or not all(isinstance(p, dict) for p in psus):
        return []
    return psus


def _racklet_loads_w(raw: Mapping[str, object]) -> dict[str, float]:
    """Racklet id → summed peak of the PSU-less servers in the racks it feeds, W."""
    racklet_of = {
        r["id"]: r["racklet"]
        for _, r in entries(raw, "racks")
        if isinstance(r.get("id"), str) and isinstance(r.get("racklet"), str)
    }
    out: dict[str, float] = {}
    for _, server in entries(raw, "servers"):
        rack = server.get("rack")
        rl = racklet_of.get(rack) if isinstance(rack, str) else None
        if isinstance(rl, str) and not server.get("psus"):
            out[rl] = out.get(rl, 0.0) + num(server, "peak_w")
    return out


def _fed_loads(raw: Mapping[str, object]) -> Iterator[_Fed]:
    for i, server in entries(raw, "servers"):
        psus = _psus(server)
        if psus:
            yield _Fed(("servers", i), server.get("redundancy", "N"), num(server, "peak_w"), psus)
    racklet_w = _racklet_loads_w(raw)
    for i, racklet in entries(raw, "racklets"):
        power = racklet.get("power")
        psus = _psus(power) if isinstance(power, dict) else []
        if isinstance(power, dict) and psus:
            load_w = racklet_w.get(str(racklet.get("id")), 0.0)
            yield _Fed(("racklets", i, "power"), power.get("redundancy", "N+1"), load_w, psus)


def _check_redundancy(fed: _Fed, index: Index, problems: list[Problem]) -> None:
    if fed.claim not in ("N+1", "2N"):
        return
    if len(fed.psus) < 2:
        problems.append(Problem(fed.where, "redundancy-unmet", f"{fed.claim} needs at least 2 PSUs"))
        return
    ratings = sorted([num(p, "rating_w") for p in fed.psus])
    if fed.claim == "N+1" and sum(ratings[:-1]) < fed.peak_w:
        msg = f"N+1: without its largest PSU the others give {sum(ratings[:-1]):.0f} W < peak {fed.peak_w:.0f} W"
        problems.append(Problem(fed.where, "redundancy-unmet", msg))
    if fed.claim == "2N":
        _check_two_n(fed, ratings, index, problems)


def _check_two_n(fed: _Fed, ratings: list[float], index: Index, problems: list[Problem]) -> None:
    # Start from each PSU's PDU: the memo then holds one entry per PDU pair, not per outlet.
    outlet_pdu = index.outlet_pdu
    pdus = tuple([outlet_pdu.get(i, i) for i in [p.get("input") for p in fed.psus] if isinstance(i, str)])
    shared = index.shared.get(pdus)
    if shared is None:
        chains = [index.ancestors(d) for d in pdus]
        common = frozenset.intersection(*chains) if len(chains) >= 2 else frozenset()
        shared = frozenset(d for d in common if index.kind_of.get(d) in _UPSTREAM_KINDS)
        index.shared[pdus] = shared
    if shared:
        msg = f"2N but every PSU path goes through {', '.join(sorted(shared))}"
        problems.append(Problem(fed.where, "redundancy-unmet", msg))
    # 2N: either half of the PSUs alone carries the whole load, so the weakest half must.
    weakest_w = sum(ratings[: (len(ratings) + 1) // 2])
    if weakest_w < fed.peak_w:
        msg = f"2N: the weakest half of the PSUs gives {weakest_w:.0f} W < peak {fed.peak_w:.0f} W"
        problems.append(Problem(fed.where, "redundancy-unmet", msg))


def _check_power_path(raw: Mapping[str, object], problems: list[Problem]) -> None:
    """A server without PSUs must sit in a rack fed by a racklet's DC bus."""
    fed_racks = {
        r["id"] for _, r in entries(raw, "racks") if isinstance(r.get("id"), str) and isinstance(r.get("racklet"), str)
    }
    for i, server in entries(raw, "servers"):
        rack = server.get("rack")
        if not server.get("psus") and isinstance(rack, str) and rack not in fed_racks:
            msg = f"server {server.get('id')!r} has no PSUs and its rack {rack!r} is not fed by a racklet"
            problems.append(Problem(f"servers[{i}].psus", "no-power-path", msg))


def _check_pdu(
    i: int,
    pdu: dict[str, object],
    outlet_w: tuple[Mapping[str, float], Mapping[str, float]],
    problems: list[Problem],
) -> None:
    """Outlets on phases the PDU has; per-phase connected peak, normal and on failover."""
    outlets = pdu.get("outlets")
    phases = pdu.get("phases", 1)
    normal_w, failover_w = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    for j, outlet in enumerate(outlets if isinstance(outlets, list) else ()):
        if not isinstance(outlet, dict):
            continue
        ph = outlet.get("phase", 1)
        if not isinstance(ph, int) or not 1 <= ph <= 3:
            continue  # pydantic reports it
        if phases in (1, 3) and isinstance(phases, int) and ph > phases:
            msg = f"outlet on phase {ph} but PDU {pdu.get('id')!r} has {phases} phase(s)"
            problems.append(Problem(f"pdus[{i}].outlets[{j}].phase", "phase-out-of-range", msg))
        oid = outlet.get("id")
        if isinstance(oid, str):
            normal_w[ph - 1] += outlet_w[0].get(oid, 0.0)
            failover_w[ph - 1] += outlet_w[1].get(oid, 0.0)
    _check_breaker(i, pdu, normal_w, failover_w, problems)


def _check_breaker(
    i: int, pdu: dict[str, object], normal_w: list[float], failover_w: list[float], problems: list[Problem]
) -> None:
    breaker_a, voltage_v = num(pdu, "breaker_a"), num(pdu, "voltage_v", 230.0)
    cap_w = BREAKER_DERATE_FRAC * breaker_a * voltage_v
    rating = f"{cap_w:.0f} W (80 % of {breaker_a:.0f} A x {voltage_v:.0f} V)"
    for ph, (load_w, fail_w) in enumerate(zip(normal_w, failover_w, strict=True), start=1):
        if cap_w <= 0:
            break
        if load_w > cap_w:
            msg = f"phase {ph}: connected peak {load_w:.0f} W exceeds breaker {rating}"
            problems.append(Problem(f"pdus[{i}].outlets", "outlet-over-breaker", msg))
        elif fail_w > cap_w:
            msg = f"phase {ph}: when the redundant supplies fail over, its peak {fail_w:.0f} W exceeds breaker {rating}"
            problems.append(Problem(f"pdus[{i}].outlets", "breaker-failover", msg, Severity.WARNING))


def _survivors(fed: _Fed) -> int:
    """PSUs left carrying the load after the failure its redundancy claim covers."""
    n = len(fed.psus)
    if fed.claim == "2N":
        return max(1, n // 2)
    if fed.claim == "N+1":
        return max(1, n - 1)
    return n


def _check_ats(raw: Mapping[str, object], problems: list[Problem]) -> None:
    for i, ats in entries(raw, "ats"):
        sources = ats.get("sources")
        if isinstance(sources, list) and len(sources) == 2 and sources[0] == sources[1]:
            msg = f"both sources are {sources[0]!r}: nothing to switch to"
            problems.append(Problem(f"ats[{i}].sources", "ats-same-source", msg))


def check_power(raw: Mapping[str, object], index: Index, problems: list[Problem]) -> dict[str, float]:
    """Append every power-chain problem of a raw site mapping to ``problems``.

    Args:
        raw: The parsed site file.
        index: Ids and upstream graph from :func:`wattwise.model.rule_index.build_index`.
        problems: Where to append.

    Returns:
        Connected peak per outlet id (equal PSU share), W, for the capacity rules.
    """
    outlet_peak_w: dict[str, float] = {}
    outlet_failover_w: dict[str, float] = {}
    for fed in _fed_loads(raw):
        _check_redundancy(fed, index, problems)
        # Normal operation: the load shares equally over its PSUs. After the failure that its
        # redundancy claim covers (one side of a 2N pair, one unit of N+1), the survivors
        # carry it all, and their breakers must too (a warning: the site still runs).
        share_w = fed.peak_w / len(fed.psus)
        fail_w = fed.peak_w / _survivors(fed)
        for psu in fed.psus:
            key = psu.get("input")
            if isinstance(key, str):
                outlet_peak_w[key] = outlet_peak_w.get(key, 0.0) + share_w
                outlet_failover_w[key] = outlet_failover_w.get(key, 0.0) + fail_w
    _check_power_path(raw, problems)
    for i, pdu in entries(raw, "pdus"):
        _check_pdu(i, pdu, (outlet_peak_w, outlet_failover_w), problems)
    _check_ats(raw, problems)
    return outlet_peak_w
