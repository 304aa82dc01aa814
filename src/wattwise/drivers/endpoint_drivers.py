"""Build wattwise drivers from a loaded endpoints file (the one place secrets are read into drivers).

Each endpoint becomes one protocol driver (an upsd with several devices becomes one
:class:`NutDriver` per device, sharing nothing but the address). :class:`BuiltDrivers` keeps
each driver's poll period and which site ids it can act on, so the controller's router sends
an action to the driver that owns its target. A service action goes only to the orchestrator
endpoint that maps the service (``services`` in the file), never to another driver that happens
to support the kind.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

from wattwise.drivers.base import Driver
from wattwise.drivers.endpoint_rules import pdu_outlets, racklet_psus
from wattwise.drivers.endpoints import (
    EndpointSpec,
    KubernetesSpec,
    LibvirtSpec,
    LoadedEndpoints,
    ModbusSpec,
    NutSpec,
    RedfishSpec,
    SecretRef,
    SlurmSpec,
    SnmpSpec,
    default_environ,
)
from wattwise.drivers.modbus import ModbusRackletDriver, RackletIds
from wattwise.drivers.nut import NutDriver
from wattwise.drivers.nut_client import NutEndpoint
from wattwise.drivers.redfish import RedfishDriver
from wattwise.drivers.redfish_client import RedfishEndpoint
from wattwise.drivers.retry import RetryPolicy
from wattwise.drivers.snmp import SnmpPduDriver, SnmpTarget
from wattwise.model.site import Site
from wattwise.model.values import Action, ActionKind

_SERVICE_KINDS = frozenset({ActionKind.SERVICE_SHED, ActionKind.SERVICE_RESTORE, ActionKind.THROTTLE})


@dataclass
class BuiltDrivers:
    """Drivers made from an endpoints file.

    Attributes:
        polled: ``(driver, poll_period_s)`` for every driver.
        routes: Site id → the driver that can act on it.
        services: Site service id → the orchestrator driver that sheds, restores and throttles it.
        site_services: Every service id of the site.
    """

    polled: list[tuple[Driver, float]] = field(default_factory=list)
    routes: dict[str, Driver] = field(default_factory=dict)
    snmp_engine: SnmpEngine | None = None
    services: dict[str, Driver] = field(default_factory=dict)
    site_services: tuple[str, ...] = ()

    @property
    def drivers(self) -> list[Driver]:
        """Every driver."""
        return [d for d, _ in self.polled]

    def route(self, action: Action) -> Driver | None:
        """The driver owning the action's target, else the first that supports its kind.

        A service's shed, restore or throttle goes to the driver mapping it, or nowhere.
        """
        if action.kind in _SERVICE_KINDS and action.target_id in self.services:
            return self.services[action.target_id]
        if action.kind in _SERVICE_KINDS and (
            action.kind is not ActionKind.THROTTLE or action.target_id in self.site_services
        ):
            return None
        owner = self.routes.get(action.target_id)
        if owner is not None and owner.supports(action.kind):
            return owner
        return next((d for d in self.drivers if d.supports(action.kind)), None)

    def can_shed(self) -> bool:
        """Whether at least one service is mapped to a driver that can shed and restore it."""
        kinds = (ActionKind.SERVICE_SHED, ActionKind.SERVICE_RESTORE)
        return any(all(d.supports(k) for k in kinds) for d in self.services.values())

    @property
    def unrouted_services(self) -> tuple[str, ...]:
        """Site services no endpoint maps: their sheds, restores and throttles cannot be sent."""
        return tuple(s for s in self.site_services if s not in self.services)

    async def close(self) -> None:
        """Close every driver."""
        for d in self.drivers:
            await d.close()
        if self.snmp_engine is not None:
            self.snmp_engine.close_dispatcher()


class _Context:
    """What building one endpoint needs: the file's defaults, the site, secrets."""

    def __init__(self, loaded: LoadedEndpoints, site: Site, environ: Mapping[str, str]) -> None:
        self.loaded, self.site, self.environ = loaded, site, environ
        self.snmp_engine: SnmpEngine | None = None

    def engine(self) -> SnmpEngine:
        """One SNMP engine for every PDU (each engine costs a MIB load)."""
        if self.snmp_engine is None:
            self.snmp_engine = SnmpEngine()
        return self.snmp_engine

    def secret(self, ref: SecretRef | None, default: str | None = None) -> str | None:
        return default if ref is None else ref.reveal(self.loaded.base_dir, self.environ)

    def retry(self, ep: EndpointSpec) -> RetryPolicy:
        spec = self.loaded.spec
        return RetryPolicy(timeout_s=ep.timeout_s or spec.timeout_s, attempts=ep.attempts or spec.attempts)

    def period_s(self, ep: EndpointSpec) -> float:
        return ep.poll_period_s or self.loaded.spec.poll_period_s


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _nut(ep: NutSpec, cx: _Context) -> list[tuple[Driver, list[str]]]:
    host, port = _host_port(ep.url, 3493)
    tls = ep.tls
    endpoint = NutEndpoint(
        host,
        port,
        ep.username,
        cx.secret(ep.password),
        tls=tls is not None,
        tls_verify=tls.verify if tls is not None else True,
        ca_file=tls.ca_file if tls is not None else None,
    )
    out: list[tuple[Driver, list[str]]] = []
    for dev in ep.devices:
        outlets = dev.outlets if dev.outlets is not None else pdu_outlets(cx.site, dev.id)
        driver = NutDriver(dev.id, dev.ups or dev.id, endpoint, outlet_ids=outlets, retry=cx.retry(ep))
        out.append((driver, [dev.id, *outlets.values()]))
    return out


def _snmp(ep: SnmpSpec, cx: _Context) -> list[tuple[Driver, list[str]]]:
    host, port = _host_port(ep.url, 161)
    target = SnmpTarget(
        host,
        port,
        community=cx.secret(ep.community, "public") or "public",
        v3_user=ep.v3_user,
        v3_auth_key=cx.secret(ep.v3_auth_key, "") or "",
        v3_priv_key=cx.secret(ep.v3_priv_key, "") or "",
        v3_context=ep.v3_context,
    )
    outlets = ep.outlets if ep.outlets is not None else pdu_outlets(cx.site, ep.device)
    driver = SnmpPduDriver(ep.device, target, outlet_ids=outlets, retry=cx.retry(ep), engine=cx.engine())
    return [(driver, [ep.device, *outlets.values()])]


def _redfish(ep: RedfishSpec, cx: _Context) -> list[tuple[Driver, list[str]]]:
    parts = urlsplit(ep.url)
    scheme = "https" if parts.scheme.lower() == "redfish+https" else "http"
    base = f"{scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
    endpoint = RedfishEndpoint(base, ep.username, cx.secret(ep.password, "") or "", ep.auth, ep.tls.verify)
    id_map = {**ep.psus, **ep.outlets}
    driver = RedfishDriver(ep.device, endpoint, id_map=id_map, retry=cx.retry(ep))
    return [(driver, [ep.device, *id_map.values()])]


def _modbus(ep: ModbusSpec, cx: _Context) -> list[tuple[Driver, list[str]]]:
    host, port = _host_port(ep.url, 502)
    psus = ep.psus if ep.psus is not None else racklet_psus(cx.site, ep.device)
    ids = RackletIds(ep.device, psus, ep.device if ep.cooling else None)
    return [(ModbusRackletDriver(ids, host, port, retry=cx.retry(ep)), [ep.device, *psus])]


def _kubernetes(ep: KubernetesSpec, cx: _Context) -> list[tuple[Driver, list[str]]]:
    from wattwise.drivers.kubernetes import KubernetesDriver
    from wattwise.drivers.kubernetes_services import WorkloadKind, WorkloadRef

    parts = urlsplit(ep.url)
    base = f"{parts.scheme.lower().removeprefix('kubernetes+')}://{parts.netloc}{parts.path}".rstrip("/")
    token = cx.secret(ep.token)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ep.tls.ca_file) if ep.tls.verify else False
    client = httpx.AsyncClient(base_url=base, headers=headers, verify=verify)
    services = {}
    for sid, svc in ep.services.items():
        kind: WorkloadKind = "deployment" if svc.deployment is not None else "statefulset"
        namespace, _, name = (svc.deployment or svc.statefulset or "").partition("/")
        services[sid] = WorkloadRef(kind, namespace, name)
    driver = KubernetesDriver(ep.cluster, base, node_ids=ep.nodes, client=client, retry=cx.retry(ep), services=services)
    driver.name = f"kubernetes:{ep.cluster}"
    return [(driver, list(ep.nodes.values()))]


def _slurm(ep: SlurmSpec, cx: _Context) -> list[tuple[Driver, list[str]]]:
    from wattwise.drivers.slurm import SlurmDriver
    from wattwise.drivers.slurm_services import JobSelector

    services = {
        sid: JobSelector(partition=s.partition, account=s.account, qos=s.qos, name=s.name, shed=s.shed)
        for sid, s in ep.services.items()
    }
    driver = SlurmDriver(ep.cluster, ep.conf_path, ep.nodes, ep.bin_dir, retry=cx.retry(ep), services=services)
    driver.name = f"slurm:{ep.cluster}"
    return [(driver, list(ep.nodes.values()))]


def _libvirt(ep: LibvirtSpec, cx: _Context) -> list[tuple[Driver, list[str]]]:
    from wattwise.drivers.libvirt import LibvirtDriver  # imports the libvirt bindings: only when asked for

    driver = LibvirtDriver({ep.host: ep.url.removeprefix("libvirt+")}, ep.domains)
    driver.name = f"libvirt:{ep.host}"
    return [(driver, [ep.host, *ep.domains.values()])]


def _build_one(ep: EndpointSpec, cx: _Context) -> list[tuple[Driver, list[str]]]:
    if isinstance(ep, NutSpec):
        return _nut(ep, cx)
    if isinstance(ep, SnmpSpec):
        return _snmp(ep, cx)
    if isinstance(ep, RedfishSpec):
        return _redfish(ep, cx)
    if isinstance(ep, ModbusSpec):
        return _modbus(ep, cx)
    if isinstance(ep, KubernetesSpec):
        return _kubernetes(ep, cx)
    if isinstance(ep, SlurmSpec):
        return _slurm(ep, cx)
    return _libvirt(ep, cx)


def build_drivers(
    loaded: LoadedEndpoints, site: Site, environ: Mapping[str, str] | None = None, *, only: Sequence[int] | None = None
) -> BuiltDrivers:
    """One driver per device endpoint, with its poll period and the site ids it acts on.

    Args:
        loaded: A valid endpoints file (:func:`wattwise.drivers.endpoint_rules.load_endpoints`).
        site: Its site.
        environ: Where ``env`` secrets are looked up (default: the process environment).
        only: Build only these endpoint indexes.

    Raises:
        ConfigError: A secret vanished between validation and now.
    """
    cx = _Context(loaded, site, default_environ() if environ is None else environ)
    built = BuiltDrivers(site_services=tuple(s.id for s in site.services))
    for i, ep in enumerate(loaded.spec.endpoints):
        if only is not None and i not in only:
            continue
        for driver, ids in _build_one(ep, cx):
            built.polled.append((driver, cx.period_s(ep)))
            for device_id in ids:
                built.routes.setdefault(device_id, driver)
            if isinstance(ep, KubernetesSpec | SlurmSpec):  # one driver each: it carries the services
                built.services.update(dict.fromkeys(ep.services, driver))
    built.snmp_engine = cx.snmp_engine
    return built
