"""A twin-backed SNMP v1/v2c agent serving the APC PowerNet-MIB rPDU subset wattwise reads.

GET/GETNEXT/GETBULK are answered from ``driver.read()``; a SET of
rPDUOutletControlOutletCommand.N (1 on, 2 off, 3 reboot) becomes ``driver.apply`` and changes
what the next GET returns (unlike snmpsimd's writecache, state really follows commands).
Phase loads come from the PDU's ``current_l1_a``..``current_l3_a`` (``current_a`` stands in
for phase 1 of a PDU that reports only a total). Outlet current is reported from the outlet's
``current_a``, or ``power_w`` at the PDU voltage.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyasn1.codec.ber import decoder, encoder  # type: ignore[import-untyped]
from pyasn1.error import PyAsn1Error  # type: ignore[import-untyped]
from pysnmp.proto import api
from pysnmp.proto.api import v2c

from wattwise.drivers import snmp as mib
from wattwise.drivers.base import Driver
from wattwise.errors import DriverError
from wattwise.model.metrics import PHASE_CURRENT_METRICS
from wattwise.model.values import Action, ActionKind, Reading
from wattwise.sim.emulators.cache import read_devices

logger = logging.getLogger(__name__)

Oid = tuple[int, ...]
_NO_ERROR, _GEN_ERR, _WRONG_VALUE, _NOT_WRITABLE = 0, 5, 10, 17
_COMMANDS = {1: ActionKind.OUTLET_ON, 2: ActionKind.OUTLET_OFF, 3: ActionKind.OUTLET_CYCLE}


def _oid(text: str) -> Oid:
    return tuple(int(x) for x in text.split("."))


@dataclass(frozen=True)
class SnmpPduSpec:
    """What one emulated PDU exposes.

    Attributes:
        device_id: Site id of the PDU.
        outlet_ids: Site ids of outlets 1..N.
        phases: Number of phases reported in rPDULoadStatusTable.
        community: v2c community accepted for GET and SET.
        voltage_v: Voltage used to turn outlet power into current.
    """

    device_id: str
    outlet_ids: Sequence[str] = ()
    phases: int = 1
    community: str = "public"
    voltage_v: float = 230.0


class SnmpPduAgent(asyncio.DatagramProtocol):
    """One PDU on a UDP port of 127.0.0.1.

    Args:
        driver: The backing Driver.
        spec: The PDU to expose.
        port: UDP port (0 = any free one).
    """

    def __init__(self, driver: Driver, spec: SnmpPduSpec, port: int = 0) -> None:
        self.driver = driver
        self.spec = spec
        self.port = port
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """``snmp://<community>@127.0.0.1:<port>``."""
        return f"snmp://{self.spec.community}@127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Bind the UDP socket."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", self.port))
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])

    async def stop(self) -> None:
        """Close the socket and wait for requests in flight."""
        if self._transport is not None:
            self._transport.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Answer one request (asynchronously: the driver may await)."""
        task = asyncio.create_task(self._answer(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            version = int(api.decodeMessageVersion(data))
            pmod = api.PROTOCOL_MODULES[version]
            msg, _ = decoder.decode(data, asn1Spec=pmod.Message())
        except (PyAsn1Error, KeyError, ValueError) as err:
            logger.debug("SNMP agent %s: undecodable datagram: %s", self.spec.device_id, err)
            return
        if str(pmod.apiMessage.get_community(msg)) != self.spec.community:
            return  # as real agents do: no answer to a wrong community
        try:
            response = await self._respond(pmod, msg)
        except DriverError as err:
            logger.warning("SNMP agent %s: backing driver failed: %s", self.spec.device_id, err)
            return
        if self._transport is not None:
            self._transport.sendto(encoder.encode(response), addr)

    async def _respond(self, pmod: Any, msg: Any) -> Any:
        req = pmod.apiMessage.get_pdu(msg)
        rsp_msg = pmod.apiMessage.get_response(msg)
        rsp = pmod.apiMessage.get_pdu(rsp_msg)
        table = self.table(await read_devices(self.driver, (self.spec.device_id, *self.spec.outlet_ids)))
        keys = sorted(table)
        binds = [(tuple(oid), value) for oid, value in pmod.apiPDU.get_varbinds(req)]
        status, index = _NO_ERROR, 0
        if req.isSameTypeWith(pmod.GetRequestPDU()):
            out = [(o, table.get(o, v2c.NoSuchInstance(""))) for o, _ in binds]
        elif req.isSameTypeWith(pmod.GetNextRequestPDU()):
            out = [_next(keys, table, o) for o, _ in binds]
        elif version_has_bulk(pmod) and req.isSameTypeWith(pmod.GetBulkRequestPDU()):
            out = _bulk(keys, table, [o for o, _ in binds], int(pmod.apiBulkPDU.get_max_repetitions(req)))
        elif req.isSameTypeWith(pmod.SetRequestPDU()):
            out, status, index = await self._set(binds)
        else:
            out, status, index = [(o, v) for o, v in binds], _GEN_ERR, 1
        pmod.apiPDU.set_varbinds(rsp, out)
        pmod.apiPDU.set_error_status(rsp, status)
        pmod.apiPDU.set_error_index(rsp, index)
        return rsp_msg

    async def _set(self, binds: list[tuple[Oid, Any]]) -> tuple[list[tuple[Oid, Any]], int, int]:
        prefix = _oid(mib.OID_OUTLET_COMMAND)
        for i, (oid, value) in enumerate(binds, start=1):
            n = oid[-1] if oid[:-1] == prefix else 0
            if not 1 <= n <= len(self.spec.outlet_ids):
                return binds, _NOT_WRITABLE, i
            try:
                kind = _COMMANDS.get(int(value))
            except (TypeError, ValueError, PyAsn1Error):
                kind = None
            if kind is None:
                return binds, _WRONG_VALUE, i
            result = await self.driver.apply(
                Action(kind=kind, target_id=self.spec.outlet_ids[n - 1], reason="SNMP SET")
            )
            if not result.ok:
                return binds, _GEN_ERR, i
        return binds, _NO_ERROR, 0

    def table(self, readings: Sequence[Reading]) -> dict[Oid, Any]:
        """The MIB view of the backing state: OID → SNMP value."""
        d = self.spec.device_id
        # Per-phase metrics (current_l1_a...) keep a phase tag beside the phase in their name.
        v = {(r.device_id, r.metric): r.value for r in readings if not r.tags or r.metric in PHASE_CURRENT_METRICS}
        t: dict[Oid, Any] = {
            _oid("1.3.6.1.2.1.1.1.0"): v2c.OctetString("wattwise twin PDU (PowerNet-MIB subset)"),
            _oid("1.3.6.1.2.1.1.5.0"): v2c.OctetString(d),
            _oid(mib.OID_NAME): v2c.OctetString(d),
            _oid(mib.OID_MODEL): v2c.OctetString("WW-TWIN-PDU"),
            _oid(mib.OID_NUM_OUTLETS): v2c.Integer(len(self.spec.outlet_ids)),
            _oid(mib.OID_NUM_PHASES): v2c.Integer(self.spec.phases),
            _oid(mib.OID_POWER_W): v2c.Integer(round(v.get((d, "power_w"), 0.0))),
        }
        for p, metric in enumerate(PHASE_CURRENT_METRICS[: self.spec.phases], start=1):
            # A single-phase PDU that reports only its total serves it as phase 1.
            amps = v.get((d, metric), v.get((d, "current_a"), 0.0) if p == 1 else 0.0)
            t[_oid(f"{mib.OID_PHASE_LOAD}.{p}")] = v2c.Gauge32(max(0, round(amps * 10)))
        for n, oid in enumerate(self.spec.outlet_ids, start=1):
            on = v.get((oid, "outlet_on"), 1.0) >= 0.5
            amps = v.get((oid, "current_a"), v.get((oid, "power_w"), 0.0) / self.spec.voltage_v)
            t[_oid(f"{mib.OID_OUTLET_NAME}.{n}")] = v2c.OctetString(oid)
            t[_oid(f"{mib.OID_OUTLET_COMMAND}.{n}")] = v2c.Integer(1 if on else 2)
            t[_oid(f"{mib.OID_OUTLET_STATE}.{n}")] = v2c.Integer(1 if on else 2)
            t[_oid(f"{mib.OID_OUTLET_LOAD}.{n}")] = v2c.Gauge32(max(0, round(amps * 10)))
        return t


def version_has_bulk(pmod: Any) -> bool:
    """Whether the protocol module has GETBULK (v2c, not v1)."""
    return hasattr(pmod, "GetBulkRequestPDU")


def _next(keys: list[Oid], table: dict[Oid, Any], oid: Oid) -> tuple[Oid, Any]:
    i = bisect.bisect_right(keys, oid)
    return (keys[i], table[keys[i]]) if i < len(keys) else (oid, v2c.EndOfMibView(""))


def _bulk(keys: list[Oid], table: dict[Oid, Any], oids: list[Oid], repetitions: int) -> list[tuple[Oid, Any]]:
    out: list[tuple[Oid, Any]] = []
    cursor = list(oids)
    for _ in range(max(1, min(repetitions, 64))):
        row = [_next(keys, table, o) for o in cursor]
        out += row
        cursor = [o for o, _ in row]
    return out
