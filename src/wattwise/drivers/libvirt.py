"""LibvirtDriver: virtual machines on one or more libvirt hosts (start, stop, migrate).

libvirt's Python binding is blocking C: every call runs in a worker thread. One connection
is kept per host URI (``qemu+ssh://host-a/system``, or ``test:///path.xml`` in tests).

Action mapping (``target_id`` is a domain name, or its site id through ``domain_ids``):

=====================  ==============================================================
ActionKind             libvirt
=====================  ==============================================================
``WORKLOAD_STOP``      ``virDomainShutdown`` (ACPI, graceful); ``hard_stop``: ``Destroy``
``WORKLOAD_START``     ``virDomainCreate``
``WORKLOAD_MIGRATE``   ``virDomainMigrate3`` live to the host ``dest_id`` (persist there,
                       undefine here); where the hypervisor driver has no migration
                       (``VIR_ERR_NO_SUPPORT``, e.g. the test driver) and
                       ``allow_cold_migration`` is set: stop, define on the destination
                       from the migratable XML, start there, undefine here
=====================  ==============================================================

Readings: per domain ``available`` (1 while running), tagged with its host.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import libvirt

from wattwise.errors import DeviceAuthError, DeviceUnavailable
from wattwise.model.values import Action, ActionKind, ActionResult, Reading

logger = logging.getLogger(__name__)

_SUPPORTED = frozenset({ActionKind.WORKLOAD_STOP, ActionKind.WORKLOAD_START, ActionKind.WORKLOAD_MIGRATE})
_UNAVAILABLE = frozenset(
    {libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_INTERNAL_ERROR}
)
_LIVE_FLAGS = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
_quiet = threading.Lock()
_quieted = False


def _quiet_libvirt() -> None:
    """Stop libvirt printing every error to stderr; errors reach us as exceptions anyway."""
    global _quieted  # process-wide by libvirt's design
    with _quiet:
        if not _quieted:
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _quieted = True


class _Refused(Exception):
    """libvirt refused the request (no such domain, invalid state): an ``ok=False`` result."""


class LibvirtDriver:
    """Domains on a set of libvirt hosts as a wattwise Driver.

    Args:
        hosts: Site id of each host -> its libvirt URI.
        domain_ids: Site id of each domain name; others keep their libvirt name.
        hard_stop: Stop with ``destroy`` (power cut) instead of an ACPI shutdown.
        allow_cold_migration: Fall back to stop/define/start where live migration is unsupported.
        now_s: Time source for reading timestamps.
    """

    name = "libvirt"

    def __init__(
        self,
        hosts: Mapping[str, str],
        domain_ids: Mapping[str, str] | None = None,
        hard_stop: bool = False,
        allow_cold_migration: bool = False,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        self.hosts = dict(hosts)
        self.domain_ids = dict(domain_ids or {})
        self._domain_names = {v: k for k, v in self.domain_ids.items()}
        self.hard_stop = hard_stop
        self.allow_cold_migration = allow_cold_migration
        self.now_s = now_s
        self._conns: dict[str, Any] = {}
        _quiet_libvirt()

    # ---- the one I/O boundary ---------------------------------------------------------------
    def _conn(self, host: str) -> Any:
        conn = self._conns.get(host)
        if conn is None or not conn.isAlive():
            try:
                conn = libvirt.open(self.hosts[host])
            except libvirt.libvirtError as err:
                raise _translate(err, host) from err
            self._conns[host] = conn
        return conn

    async def _call(self, fn: Callable[[], Any], host: str) -> Any:
        """Run a blocking libvirt call in a thread; translate connection failures once."""

        def guarded() -> Any:
            try:
                return fn()
            except libvirt.libvirtError as err:
                if err.get_error_code() in _UNAVAILABLE or err.get_error_code() == libvirt.VIR_ERR_AUTH_FAILED:
                    raise _translate(err, host) from err
                raise _Refused(str(err.get_error_message() or err)) from err

        return await asyncio.to_thread(guarded)

    async def _domains(self, host: str) -> list[tuple[str, bool]]:
        """Name and running state of every domain defined on ``host``."""

        def run() -> list[tuple[str, bool]]:
            return [(d.name(), bool(d.isActive())) for d in self._conn(host).listAllDomains()]

        domains: list[tuple[str, bool]] = await self._call(run, host)
        return domains

    # ---- Driver protocol --------------------------------------------------------------------
    def supports(self, kind: ActionKind) -> bool:
        """Domain stop, start and migrate."""
        return kind in _SUPPORTED

    async def read(self) -> list[Reading]:
        """``available`` per domain (1 while running), tagged with the host it is on."""
        t_s = self.now_s()
        readings = []
        for host in self.hosts:
            for name, active in await self._domains(host):
                device_id = self.domain_ids.get(name, name)
                readings.append(Reading(device_id, "available", float(bool(active)), t_s, tags=(("host", host),)))
        return readings

    async def apply(self, action: Action) -> ActionResult:
        """Apply one action; libvirt refusals come back as ``ok=False`` with its message."""
        if action.kind not in _SUPPORTED:
            return self._result(action, False, f"libvirt cannot {action.kind}")
        name = self._domain_names.get(action.target_id, action.target_id)
        try:
            host = await self._locate(name)
            if action.kind is ActionKind.WORKLOAD_MIGRATE:
                message = await self._migrate(name, host, action.dest_id)
            else:
                message = await self._power(name, host, start=action.kind is ActionKind.WORKLOAD_START)
        except _Refused as err:
            logger.warning("libvirt refused %s on %s: %s", action.kind, name, err)
            return self._result(action, False, str(err))
        logger.info("libvirt %s %s: %s", action.kind, name, message)
        return self._result(action, True, message)

    async def close(self) -> None:
        """Close every host connection."""
        for host, conn in list(self._conns.items()):
            await self._call(conn.close, host)
        self._conns.clear()

    # ---- actions ----------------------------------------------------------------------------
    async def _locate(self, name: str) -> str:
        """The host that has the domain defined (running or not)."""
        for host in self.hosts:
            if name in dict(await self._domains(host)):
                return host
        raise _Refused(f"no domain {name!r} on hosts {sorted(self.hosts)}")

    async def _power(self, name: str, host: str, start: bool) -> str:
        def run() -> str:
            dom = self._conn(host).lookupByName(name)
            if bool(dom.isActive()) == start:
                return f"already {'running' if start else 'stopped'} on {host}"
            if start:
                dom.create()
                return f"started on {host}"
            (dom.destroy if self.hard_stop else dom.shutdown)()
            return f"{'destroyed' if self.hard_stop else 'shutdown requested'} on {host}"

        message: str = await self._call(run, host)
        return message

    async def _migrate(self, name: str, src: str, dest: str | None) -> str:
        if dest is None or dest not in self.hosts:
            raise _Refused(f"migration of {name} needs a destination among {sorted(self.hosts)}, got {dest!r}")
        if dest == src:
            return f"already on {dest}"

        def live() -> str:
            dom = self._conn(src).lookupByName(name)
            try:
                dom.migrate3(self._conn(dest), {}, _LIVE_FLAGS)
            except libvirt.libvirtError as err:
                if err.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT or not self.allow_cold_migration:
                    raise
                return self._cold_migrate(dom, dest)
            return f"live-migrated {src} -> {dest}"

        message: str = await self._call(live, src)
        return message

    def _cold_migrate(self, dom: Any, dest: str) -> str:
        """Stop, define on ``dest`` from the migratable XML, start there, undefine here."""
        was_active = bool(dom.isActive())
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_MIGRATABLE)
        new = self._conn(dest).defineXML(xml)  # define first: a failure leaves the source intact
        if was_active:
            dom.destroy()
            new.create()
        dom.undefine()
        return f"cold-migrated to {dest} (live migration unsupported here){', restarted' if was_active else ''}"

    def _result(self, action: Action, ok: bool, message: str) -> ActionResult:
        return ActionResult(command_id=action.command_id, ok=ok, message=message, t_s=self.now_s())


def _translate(err: Any, host: str) -> DeviceUnavailable | DeviceAuthError:
    code = err.get_error_code()
    message = f"libvirt host {host}: {err.get_error_message() or err}"
    if code == libvirt.VIR_ERR_AUTH_FAILED:
        return DeviceAuthError(message, device_id=host)
    return DeviceUnavailable(message, device_id=host)
