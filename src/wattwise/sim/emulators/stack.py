"""Start every twin-backed protocol endpoint of a site in one call, and get drivers that use them.

>>> # endpoints = await start_endpoints(TwinDriver(twin), site)
>>> # readings = await endpoints.driver().read()      # over NUT, Redfish, SNMP and Modbus
>>> # await endpoints.stop()

Mapping of the site onto protocols (what such equipment speaks in the field):

* UPS and ATS → NUT, through the real ``upsd`` (Debian nut-server) with a wattwise socket
  driver per device; instant commands reach the backing driver.
* PDUs → APC PowerNet-MIB SNMP agent (``pdu_protocol="snmp"``, default), or a Redfish
  RackPDU (``"redfish"``), or a NUT ePDU (``"nut"``).
* Servers → a Redfish BMC each (PowerLimit; PSUs and their set-point Controls when it has PSUs).
* Racklets → one Modbus TCP endpoint each (power module unit 1, cooling module unit 2).
"""

from __future__ import annotations

import logging
import re
import shutil
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

from wattwise.drivers.base import Driver
from wattwise.drivers.fanout import FanoutDriver
from wattwise.drivers.modbus import ModbusRackletDriver, RackletIds
from wattwise.drivers.nut import NutDriver
from wattwise.drivers.nut_client import NutEndpoint
from wattwise.drivers.redfish import RedfishDriver
from wattwise.drivers.redfish_client import RedfishEndpoint
from wattwise.drivers.retry import RetryPolicy
from wattwise.drivers.snmp import SnmpPduDriver, SnmpTarget
from wattwise.model.site import Racklet, Site
from wattwise.sim.emulators.cache import CachedDriver
from wattwise.sim.emulators.modbus import ModbusRackletEmulator
from wattwise.sim.emulators.nut_socket import NutDeviceSpec, NutSocketEmulator
from wattwise.sim.emulators.redfish import RedfishEmulator
from wattwise.sim.emulators.redfish_resources import RedfishDeviceSpec
from wattwise.sim.emulators.snmp import SnmpPduAgent, SnmpPduSpec
from wattwise.sim.emulators.upsd import UpsdConfig, UpsdProcess

logger = logging.getLogger(__name__)

Protocol_ = Literal["nut", "redfish", "snmp", "modbus"]
NUT_USER, NUT_PASSWORD = "wattwise", "wattwise-nut"
REDFISH_USER, REDFISH_PASSWORD = "admin", "wattwise-redfish"
SNMP_COMMUNITY = "wattwise"


class _Server(Protocol):
    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Endpoint:
    """One protocol endpoint serving some site devices.

    Attributes:
        protocol: ``nut``, ``redfish``, ``snmp`` or ``modbus``.
        url: Where it listens (no credentials).
        device_ids: Site ids whose readings it serves (device and its outlets/PSUs).
        client: A wattwise driver configured for it (ids mapped back to the site's).
    """

    protocol: str
    url: str
    device_ids: tuple[str, ...]
    client: Driver


@dataclass
class Endpoints:
    """Everything :func:`start_endpoints` started."""

    endpoints: list[Endpoint] = field(default_factory=list)
    _servers: list[_Server] = field(default_factory=list)
    _upsd: UpsdProcess | None = None
    _workdir: Path | None = None
    _snmp_engine: SnmpEngine | None = None

    def drivers(self) -> list[Driver]:
        """One protocol driver per endpoint."""
        return [e.client for e in self.endpoints]

    def driver(self) -> FanoutDriver:
        """All endpoints as one Driver; actions go to the endpoint that serves their target."""
        routes = {d: e.client for e in self.endpoints for d in e.device_ids}
        return FanoutDriver(self.drivers(), routes, name="wire")

    def urls(self) -> dict[str, str]:
        """Device id → endpoint URL."""
        return {d: e.url for e in self.endpoints for d in e.device_ids}

    async def stop(self) -> None:
        """Close client drivers, stop emulators and upsd (by PID), remove the work dir."""
        for e in self.endpoints:
            await e.client.close()
        if self._snmp_engine is not None:
            self._snmp_engine.close_dispatcher()
        if self._upsd is not None:
            self._upsd.stop()
        for s in self._servers:
            await s.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nut_name(device_id: str) -> str:
    """A NUT-safe ups name for a site id."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", device_id)


async def start_endpoints(
    driver: Driver,
    site: Site,
    *,
    protocols: Sequence[Protocol_] = ("nut", "redfish", "snmp", "modbus"),
    pdu_protocol: Literal["snmp", "redfish", "nut"] = "snmp",
    cache_s: float = 0.05,
    retry: RetryPolicy | None = None,
) -> Endpoints:
    """Serve ``site``'s devices from ``driver`` over real protocols on 127.0.0.1.

    Args:
        driver: The backing Driver (``TwinDriver``); wrapped in a short read cache.
        site: The site whose devices to expose.
        protocols: Which protocols to start (devices of the others are not served).
        pdu_protocol: How PDUs are exposed.
        cache_s: Max age of a shared backing read, s.
        retry: Retry policy of the client drivers.

    Returns:
        The endpoints, their client drivers, and ``stop()``.

    Raises:
        FileNotFoundError: NUT is requested but upsd is not installed.
    """
    backing = CachedDriver(driver, cache_s)
    retry = retry or RetryPolicy(timeout_s=2.0, attempts=2)
    out = Endpoints()
    try:
        if "nut" in protocols:
            await _start_nut(backing, site, pdu_protocol == "nut", retry, out)
        if "snmp" in protocols and pdu_protocol == "snmp":
            await _start_snmp(backing, site, retry, out)
        if "redfish" in protocols:
            await _start_redfish(backing, site, pdu_protocol == "redfish", retry, out)
        if "modbus" in protocols:
            await _start_modbus(backing, site, retry, out)
    except BaseException:
        await out.stop()
        raise
    logger.info("site %s on the wire: %d endpoints", site.id, len(out.endpoints))
    return out


async def _start_nut(backing: Driver, site: Site, pdus: bool, retry: RetryPolicy, out: Endpoints) -> None:
    specs = [NutDeviceSpec(nut_name(u.id), u.id, (), "ups") for u in site.ups]
    specs += [NutDeviceSpec(nut_name(a.id), a.id, (), "ats") for a in site.ats]
    if pdus:
        specs += [NutDeviceSpec(nut_name(p.id), p.id, tuple(o.id for o in p.outlets), "pdu") for p in site.pdus]
    if not specs:
        return
    out._workdir = Path(tempfile.mkdtemp(prefix="wattwise-upsd-"))
    port = _free_tcp_port()
    upsd = UpsdProcess(
        UpsdConfig(out._workdir, port, users={NUT_USER: NUT_PASSWORD}, sockets=[s.ups_name for s in specs])
    )
    out._upsd = upsd
    upsd.start_drivers()
    for spec in specs:
        emulator = NutSocketEmulator(backing, spec, upsd.config.socket_path(spec.ups_name))
        await emulator.start()
        out._servers.append(emulator)
    upsd.start_upsd()
    await upsd.wait_ready([s.ups_name for s in specs], timeout_s=10.0)
    endpoint = NutEndpoint(port=port, username=NUT_USER, password=NUT_PASSWORD)
    for spec in specs:
        outlets = {n: oid for n, oid in enumerate(spec.outlet_ids, start=1)}
        client = NutDriver(spec.device_id, spec.ups_name, endpoint, outlet_ids=outlets, retry=retry)
        out.endpoints.append(
            Endpoint("nut", f"{endpoint.url}/{spec.ups_name}", (spec.device_id, *spec.outlet_ids), client)
        )


async def _start_snmp(backing: Driver, site: Site, retry: RetryPolicy, out: Endpoints) -> None:
    if site.pdus:
        out._snmp_engine = SnmpEngine()  # one engine for every PDU: each costs a MIB load
    for pdu in site.pdus:
        outlets = tuple(o.id for o in pdu.outlets)
        agent = SnmpPduAgent(backing, SnmpPduSpec(pdu.id, outlets, pdu.phases, SNMP_COMMUNITY, pdu.voltage_v))
        await agent.start()
        out._servers.append(agent)
        client = SnmpPduDriver(
            pdu.id,
            SnmpTarget(port=agent.port, community=SNMP_COMMUNITY),
            outlet_ids=dict(enumerate(outlets, start=1)),
            retry=retry,
            engine=out._snmp_engine,
        )
        out.endpoints.append(Endpoint("snmp", f"snmp://127.0.0.1:{agent.port}", (pdu.id, *outlets), client))


async def _start_redfish(backing: Driver, site: Site, pdus: bool, retry: RetryPolicy, out: Endpoints) -> None:
    specs = [
        RedfishDeviceSpec(
            s.id,
            "server",
            psu_ids=tuple(p.id for p in s.psus),
            limit_min_w=0.0,
            limit_max_w=2.0 * s.peak_w,
            username=REDFISH_USER,
            password=REDFISH_PASSWORD,
        )
        for s in site.servers
    ]
    if pdus:
        specs += [
            RedfishDeviceSpec(
                p.id, "pdu", outlet_ids=tuple(o.id for o in p.outlets), username=REDFISH_USER, password=REDFISH_PASSWORD
            )
            for p in site.pdus
        ]
    for spec in specs:
        emulator = RedfishEmulator(backing, spec)
        await emulator.start()
        out._servers.append(emulator)
        client = RedfishDriver(
            spec.device_id,
            RedfishEndpoint(emulator.url, REDFISH_USER, REDFISH_PASSWORD),
            id_map=spec.id_map(),
            retry=retry,
        )
        out.endpoints.append(
            Endpoint("redfish", emulator.url, (spec.device_id, *spec.psu_ids, *spec.outlet_ids), client)
        )


def racklet_emulator(backing: Driver, racklet: Racklet) -> tuple[RackletIds, ModbusRackletEmulator]:
    """A racklet's Modbus emulator (not started) and the ids its client driver maps back to."""
    ids = RackletIds(racklet.id, tuple(p.id for p in racklet.power.psus), racklet.id)
    cooling = racklet.cooling
    emulator = ModbusRackletEmulator(
        backing,
        ids,
        fans=cooling.fans,
        pumps=cooling.pumps,
        leak_sensors=cooling.leak_sensors,
        inlet_setpoint_c=cooling.setpoint_inlet_c,
    )
    return ids, emulator


async def _start_modbus(backing: Driver, site: Site, retry: RetryPolicy, out: Endpoints) -> None:
    for racklet in site.racklets:
        ids, emulator = racklet_emulator(backing, racklet)
        await emulator.start()
        out._servers.append(emulator)
        client = ModbusRackletDriver(ids, port=emulator.port, retry=retry)
        out.endpoints.append(Endpoint("modbus", emulator.url, (racklet.id, *ids.psu_ids), client))
