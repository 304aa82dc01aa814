"""Check an endpoints file against its site, and resolve each endpoint's id mapping.

Mappings a file leaves out default to the site's own order: a PDU's outlets by number (NUT,
SNMP), a racklet's PSUs in register order (Modbus). Redfish ids cannot be guessed (every BMC
names its PSUs its own way), so unmapped Redfish PSUs keep ``<device>/<Id>`` and the
controller's validator rejects them as unknown devices: map them in the file.

Services have no default: a service is shed only through the orchestrator endpoint that maps it
(``services``), and one service is mapped by one endpoint at most.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from wattwise.drivers.endpoints import (
    EndpointSpec,
    EndpointsValidationError,
    KubernetesSpec,
    LibvirtSpec,
    LoadedEndpoints,
    ModbusSpec,
    NutSpec,
    RedfishSpec,
    SlurmSpec,
    SnmpSpec,
    default_environ,
    located,
    parse_endpoints,
    reveal_all,
    scheme_of,
)
from wattwise.model.problems import Problem, Severity
from wattwise.model.site import Site

OBSERVED_KINDS = ("ups", "ats", "pdu", "server", "racklet")
"""Site devices that should have an endpoint (outlets and PSUs come with their parent)."""

_ALLOWED = {
    "nut": ("ups", "ats", "pdu"),
    "snmp": ("pdu",),
    "redfish": ("server", "pdu"),
    "modbus": ("racklet",),
}


def site_kinds(site: Site) -> dict[str, str]:
    """Site id → its kind.

    Kinds: ``ups``, ``ats``, ``pdu``, ``outlet``, ``server``, ``psu``, ``racklet``, ``workload``, ``service``.
    """
    kinds = {u.id: "ups" for u in site.ups}
    kinds.update({a.id: "ats" for a in site.ats})
    for pdu in site.pdus:
        kinds[pdu.id] = "pdu"
        kinds.update({o.id: "outlet" for o in pdu.outlets})
    for server in site.servers:
        kinds[server.id] = "server"
        kinds.update({p.id: "psu" for p in server.psus})
    for racklet in site.racklets:
        kinds[racklet.id] = "racklet"
        kinds.update({p.id: "psu" for p in racklet.power.psus})
    kinds.update({w.id: "workload" for w in site.workloads})
    kinds.update({s.id: "service" for s in site.services})
    return kinds


def pdu_outlets(site: Site, pdu_id: str) -> dict[int, str]:
    """A PDU's outlets by 1-based number, in the site's order."""
    pdu = next((p for p in site.pdus if p.id == pdu_id), None)
    return {} if pdu is None else {n: o.id for n, o in enumerate(pdu.outlets, start=1)}


def racklet_psus(site: Site, racklet_id: str) -> tuple[str, ...]:
    """A racklet's PSU ids in register order."""
    racklet = next((r for r in site.racklets if r.id == racklet_id), None)
    return () if racklet is None else tuple(p.id for p in racklet.power.psus)


@dataclass(frozen=True)
class Served:
    """One site id an endpoint serves, where in the file it is named, and what it must be."""

    device_id: str
    path: str
    kinds: tuple[str, ...]
    power: bool = True


def service_problems(eps: tuple[EndpointSpec, ...], site: Site) -> tuple[list[Problem], dict[str, int]]:
    """Mapped service ids that are not site services, or mapped twice; and which endpoint maps each."""
    services = {s.id for s in site.services}
    kinds = site_kinds(site)
    problems: list[Problem] = []
    owner: dict[str, int] = {}
    for i, ep in enumerate(eps):
        if not isinstance(ep, KubernetesSpec | SlurmSpec):
            continue
        for sid in ep.services:
            path = f"endpoints[{i}].services.{sid}"
            if sid not in services:
                what = f" a {kinds[sid]}," if sid in kinds else ""
                problems.append(Problem(path, "unknown-service", f"{sid!r} is{what} not a service of site {site.id}"))
            elif sid in owner:
                first = eps[owner[sid]]
                where = f"endpoints[{owner[sid]}] ({scheme_of(first.url)})"
                problems.append(Problem(path, "duplicate-service", f"{sid!r} is already mapped by {where}"))
            else:
                owner[sid] = i
    return problems, owner


def served(i: int, ep: EndpointSpec, site: Site) -> Iterator[Served]:
    """Every site id endpoint ``i`` serves, defaults included."""
    at = f"endpoints[{i}]"
    if isinstance(ep, NutSpec):
        for j, dev in enumerate(ep.devices):
            yield Served(dev.id, f"{at}.devices[{j}].id", _ALLOWED["nut"])
            outlets = dev.outlets if dev.outlets is not None else pdu_outlets(site, dev.id)
            yield from (Served(o, f"{at}.devices[{j}].outlets.{n}", ("outlet",)) for n, o in outlets.items())
    elif isinstance(ep, SnmpSpec):
        yield Served(ep.device, f"{at}.device", _ALLOWED["snmp"])
        outlets = ep.outlets if ep.outlets is not None else pdu_outlets(site, ep.device)
        yield from (Served(o, f"{at}.outlets.{n}", ("outlet",)) for n, o in outlets.items())
    elif isinstance(ep, RedfishSpec):
        yield Served(ep.device, f"{at}.device", _ALLOWED["redfish"])
        yield from (Served(p, f"{at}.psus.{k}", ("psu",)) for k, p in ep.psus.items())
        yield from (Served(o, f"{at}.outlets.{k}", ("outlet",)) for k, o in ep.outlets.items())
    elif isinstance(ep, ModbusSpec):
        yield Served(ep.device, f"{at}.device", _ALLOWED["modbus"])
        psus = ep.psus if ep.psus is not None else racklet_psus(site, ep.device)
        yield from (Served(p, f"{at}.psus[{n}]", ("psu",)) for n, p in enumerate(psus))
    elif isinstance(ep, KubernetesSpec | SlurmSpec):
        yield from (Served(s, f"{at}.nodes.{k}", ("server",), power=False) for k, s in ep.nodes.items())
    elif isinstance(ep, LibvirtSpec):
        yield Served(ep.host, f"{at}.host", ("server",), power=False)
        yield from (Served(w, f"{at}.domains.{k}", ("workload",), power=False) for k, w in ep.domains.items())


def check_against_site(eps: tuple[EndpointSpec, ...], site: Site) -> tuple[list[Problem], dict[str, int]]:
    """Unknown ids, ids of the wrong kind, and devices served twice; and who serves what."""
    kinds = site_kinds(site)
    problems: list[Problem] = []
    owner: dict[str, int] = {}
    for i, ep in enumerate(eps):
        twice: list[Served] = []
        for s in served(i, ep, site):
            kind = kinds.get(s.device_id)
            if kind is None:
                problems.append(Problem(s.path, "unknown-device", f"{s.device_id!r} is not in site {site.id}"))
            elif kind not in s.kinds:
                want = " or ".join(s.kinds)
                problems.append(Problem(s.path, "wrong-kind", f"{s.device_id!r} is a {kind}, not a {want}"))
            elif s.power and s.device_id in owner:
                twice.append(s)
            elif s.power:
                owner[s.device_id] = i
        if twice:  # one problem per endpoint: a repeated PDU would otherwise repeat every outlet
            first = twice[0]
            more = f" (and {len(twice) - 1} more of its ids)" if len(twice) > 1 else ""
            msg = f"{first.device_id!r} is already served by endpoints[{owner[first.device_id]}]{more}"
            problems.append(Problem(first.path, "duplicate-device", msg))
    return problems, owner


def unobserved(site: Site, owner: Mapping[str, int]) -> tuple[tuple[str, ...], list[Problem]]:
    """Site devices no endpoint serves, and one warning per kind that has some."""
    kinds = site_kinds(site)
    missing = tuple(d for d, k in kinds.items() if k in OBSERVED_KINDS and d not in owner)
    problems = []
    for kind in OBSERVED_KINDS:
        ids = [d for d in missing if kinds[d] == kind]
        if ids:
            total = sum(1 for k in kinds.values() if k == kind)
            shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
            msg = f"{len(ids)} of {total} {kind} device(s) have no endpoint and stay unobserved: {shown}"
            problems.append(Problem("endpoints", "unobserved", msg, Severity.WARNING))
    return missing, problems


def check_endpoints_text(
    text: str,
    site: Site,
    file: str = "<string>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[LoadedEndpoints | None, tuple[Problem, ...]]:
    """Validate endpoints text against ``site``; the loaded file (when error-free) and every problem."""
    spec, problems = parse_endpoints(text, file)
    result: LoadedEndpoints | None = None
    if spec is not None:
        if spec.site != site.id:
            problems.append(Problem("site", "wrong-site", f"the file is for site {spec.site!r}, not {site.id!r}"))
        site_problems, owner = check_against_site(spec.endpoints, site)
        mapping_problems, service_owner = service_problems(spec.endpoints, site)
        base = base_dir or Path(file).parent
        secrets = reveal_all(spec, base, default_environ() if environ is None else environ)
        problems += site_problems + mapping_problems + secrets
        missing, warnings = unobserved(site, owner)
        problems += warnings
        result = LoadedEndpoints(spec, base, dict(owner), missing, services=service_owner)
    out = located(problems, text, file)
    if result is None or any(p.severity is Severity.ERROR for p in out):
        return None, out
    return dataclasses.replace(result, problems=out), out


def load_endpoints(path: Path, site: Site, environ: Mapping[str, str] | None = None) -> LoadedEndpoints:
    """Load an endpoints file for ``site``; warnings are kept in ``problems``.

    Raises:
        EndpointsValidationError: The file broke at least one rule (every problem is listed).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise EndpointsValidationError((Problem("<root>", "unreadable", str(err), file=str(path)),)) from err
    loaded, problems = check_endpoints_text(text, site, str(path), path.parent, environ)
    if loaded is None:
        raise EndpointsValidationError(problems)
    return loaded
