"""A twin-backed SNMP v1/v2c agent serving the APC PowerNet-MIB rPDU subset wattwise reads.

GET/GETNEXT/GETBULK are answered from ``driver.read()``; a SET of
rPDUOutletControlOutletCommand.N (1 on, 2 off, 3 reboot) becomes ``driver.apply`` and changes
what the next GET returns (unlike snmpsimd's writecache, state really follows commands).
Phase loads come from the PDU's ``current_l1_a``..``current_l3_a`` (``current_a`` stands in
for phase 1 of a PDU that reports only a total). Outlet current is reported from the outlet's
``current_a``, or ``power_w`` at the PDU voltage.

Messages are decoded and encoded by :mod:`wattwise.sim.emulators.snmp_ber` (pysnmp's pyasn1
codec cost more CPU than the poller it served). v1 follows RFC 1157: an absent object or the
end of the MIB is ``noSuchName``; v2c answers them with the RFC 3416 exception values.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wattwise.drivers import snmp as mib
from wattwise.drivers.base import Driver
from wattwise.errors import DriverError
from wattwise.model.metrics import PHASE_CURRENT_METRICS
from wattwise.model.values import Action, ActionKind, Reading
from wattwise.sim.emulators import snmp_ber as ber
from wattwise.sim.emulators.cache import read_devices

logger = logging.getLogger(__name__)

Oid = tuple[int, ...]
_NO_ERROR, _NO_SUCH_NAME, _GEN_ERR, _WRONG_VALUE, _NOT_WRITABLE = 0, 2, 5, 10, 17
_COMMANDS = {1: ActionKind.OUTLET_ON, 2: ActionKind.OUTLET_OFF, 3: ActionKind.OUTLET_CYCLE}


@functools.cache
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
        self._community = spec.community.encode()
        self._keys: list[Oid] = []  # the MIB view's OIDs, sorted (they never change, values do)
        self._names: dict[Oid, bytes] = {}  # encoded OIDs, reused in every answer

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
            request = ber.decode_request(data)
        except ber.BerError as err:
            logger.debug("SNMP agent %s: undecodable datagram: %s", self.spec.device_id, err)
            return
        if request.community != self._community:
            return  # as real agents do: no answer to a wrong community
        try:
            status, index, binds = await self._respond(request)
        except DriverError as err:
            logger.warning("SNMP agent %s: backing driver failed: %s", self.spec.device_id, err)
            return
        if self._transport is not None:
            self._transport.sendto(ber.encode_response(request, status, index, binds), addr)

    async def _respond(self, request: ber.Request) -> tuple[int, int, list[tuple[bytes, bytes]]]:
        if request.pdu == ber.SET:
            status, index = await self._set(request.varbinds)
            return status, index, self._echo(request)
        table = self.table(await read_devices(self.driver, (self.spec.device_id, *self.spec.outlet_ids)))
        if not self._keys:
            self._keys = sorted(table)
        oids = [o for o, _ in request.varbinds]
        if request.pdu == ber.GET:
            found = [(o, table.get(o)) for o in oids]
        elif request.pdu == ber.GET_NEXT:
            found = [self._next(table, o) for o in oids]
        elif request.pdu == ber.GET_BULK and request.version == 1:
            found = self._bulk(table, oids, request.field2, request.field3)
        else:
            return _GEN_ERR, 1, self._echo(request)
        missing = next((i for i, (_, v) in enumerate(found, start=1) if v is None), 0)
        if request.version == 0 and missing:
            return _NO_SUCH_NAME, missing, self._echo(request)  # v1 has no exception values
        exception = ber.NO_SUCH_INSTANCE if request.pdu == ber.GET else ber.END_OF_MIB_VIEW
        return _NO_ERROR, 0, [(self._name(o), exception if v is None else v) for o, v in found]

    def _echo(self, request: ber.Request) -> list[tuple[bytes, bytes]]:
        """The request's varbinds, as an error answer carries them."""
        return [(self._name(o), ber.tlv(*v)) for o, v in request.varbinds]

    def _name(self, oid: Oid) -> bytes:
        name = self._names.get(oid)
        if name is None:
            name = self._names[oid] = ber.oid(oid)
        return name

    def _next(self, table: dict[Oid, bytes], oid: Oid) -> tuple[Oid, bytes | None]:
        i = bisect.bisect_right(self._keys, oid)
        return (self._keys[i], table[self._keys[i]]) if i < len(self._keys) else (oid, None)

    def _bulk(
        self, table: dict[Oid, bytes], oids: list[Oid], non_repeaters: int, repetitions: int
    ) -> list[tuple[Oid, bytes | None]]:
        fixed = max(0, non_repeaters)
        out = [self._next(table, o) for o in oids[:fixed]]
        cursor = oids[fixed:]
        for _ in range(max(1, min(repetitions, 64)) if cursor else 0):
            row = [self._next(table, o) for o in cursor]
            out += row
            cursor = [o for o, _ in row]
        return out

    async def _set(self, binds: list[tuple[Oid, tuple[int, bytes]]]) -> tuple[int, int]:
        prefix = _oid(mib.OID_OUTLET_COMMAND)
        for i, (oid, value) in enumerate(binds, start=1):
            n = oid[-1] if oid[:-1] == prefix else 0
            if not 1 <= n <= len(self.spec.outlet_ids):
                return _NOT_WRITABLE, i
            command = ber.value_int(value)
            kind = _COMMANDS.get(command) if command is not None else None
            if kind is None:
                return _WRONG_VALUE, i
            result = await self.driver.apply(
                Action(kind=kind, target_id=self.spec.outlet_ids[n - 1], reason="SNMP SET")
            )
            if not result.ok:
                return _GEN_ERR, i
        return _NO_ERROR, 0

    def table(self, readings: Sequence[Reading]) -> dict[Oid, bytes]:
        """The MIB view of the backing state: OID → BER-encoded SNMP value."""
        d = self.spec.device_id
        # Per-phase metrics (current_l1_a...) keep a phase tag beside the phase in their name.
        v = {(r.device_id, r.metric): r.value for r in readings if not r.tags or r.metric in PHASE_CURRENT_METRICS}
        t: dict[Oid, bytes] = {
            _oid("1.3.6.1.2.1.1.1.0"): ber.octets("wattwise twin PDU (PowerNet-MIB subset)"),
            _oid("1.3.6.1.2.1.1.5.0"): ber.octets(d),
            _oid(mib.OID_NAME): ber.octets(d),
            _oid(mib.OID_MODEL): ber.octets("WW-TWIN-PDU"),
            _oid(mib.OID_NUM_OUTLETS): ber.integer(len(self.spec.outlet_ids)),
            _oid(mib.OID_NUM_PHASES): ber.integer(self.spec.phases),
            _oid(mib.OID_POWER_W): ber.integer(round(v.get((d, "power_w"), 0.0))),
        }
        for p, metric in enumerate(PHASE_CURRENT_METRICS[: self.spec.phases], start=1):
            # A single-phase PDU that reports only its total serves it as phase 1.
            amps = v.get((d, metric), v.get((d, "current_a"), 0.0) if p == 1 else 0.0)
            t[_oid(f"{mib.OID_PHASE_LOAD}.{p}")] = ber.unsigned(round(amps * 10))
        for n, oid in enumerate(self.spec.outlet_ids, start=1):
            on = v.get((oid, "outlet_on"), 1.0) >= 0.5
            amps = v.get((oid, "current_a"), v.get((oid, "power_w"), 0.0) / self.spec.voltage_v)
            t[_oid(f"{mib.OID_OUTLET_NAME}.{n}")] = ber.octets(oid)
            t[_oid(f"{mib.OID_OUTLET_COMMAND}.{n}")] = ber.integer(1 if on else 2)
            t[_oid(f"{mib.OID_OUTLET_STATE}.{n}")] = ber.integer(1 if on else 2)
            t[_oid(f"{mib.OID_OUTLET_LOAD}.{n}")] = ber.unsigned(round(amps * 10))
        return t
