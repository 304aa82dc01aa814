"""One SNMP agent as pysnmp 7.1's engine sees it: set up once, then one PDU per request.

pysnmp's high-level ``get_cmd`` re-checks its local configuration, resolves and copies every
varbind into a new PDU on each call (about a third of the poller's CPU per 18-varbind GET,
measured). A session does that once: the engine's target is configured on the first request
and a GET PDU is built once per OID list; each request only sets a fresh request-id and hands
the PDU to pysnmp's command generator, which still does the message processing, security
(v3 USM) and matching of the answer.

SNMPv3 credentials a wrong key cannot be read from a timeout alone: the agent's report
(usmStatsWrongDigests...) is signed with the right key, so pysnmp drops it as failing our
authentication check and the request would time out. The session watches pysnmp's
``sm-failure`` execution point for messages from its agent and fails the request in flight
with :class:`wattwise.errors.DeviceAuthError` at once. Reports pysnmp does deliver
(unknown user name, decryption error...) arrive as error indications of those classes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import cmdgen
from pysnmp.hlapi.v3arch.asyncio import CommunityData, ContextData, UdpTransportTarget, UsmUserData
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pysnmp.proto import errind
from pysnmp.proto.api import v1 as v1api
from pysnmp.proto.api import v2c
from pysnmp.proto.rfc1902 import ObjectName

from wattwise.errors import DeviceAuthError, DeviceProtocolError, DeviceUnavailable, DriverError

_SM_FAILURE = "rfc3412.prepareDataElements:sm-failure"
# UDP sockets per engine, agents spread over them by port. asyncio reads one datagram per
# socket per event-loop turn: with one socket, 250 agents answering at once queued behind each
# other for ~1 s and overflowed its receive buffer (failed polls in bench/poll_1000.py).
LANES = 16
# Error indications that mean "our credentials", not "the agent is away".
_AUTH_INDICATIONS = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.AuthenticationFailure,
    errind.AuthenticationError,
    errind.DecryptionError,
    errind.UnknownSecurityName,
    errind.UnsupportedSecurityLevel,
    errind.UnknownCommunityName,
)


class SnmpRefused(DeviceProtocolError):
    """The agent answered with an SNMP error status (noSuchName, wrongValue, notWritable...).

    Attributes:
        status: The error status name.
        index: 1-based index of the offending variable binding.
    """

    def __init__(self, status: str, index: int, *, device_id: str | None, url: str | None) -> None:
        super().__init__(f"error status {status} at varbind {index}", device_id=device_id, url=url)
        self.status = status
        self.index = index


@dataclass(frozen=True, slots=True)
class SnmpPeer:
    """Who a session talks to, and as whom.

    Attributes:
        host: Agent host.
        port: Agent UDP port.
        auth: v2c community or v3 USM user (built once: pysnmp keys its configuration on it).
        context: SNMPv3 context.
        timeout_s: pysnmp's own deadline for one request.
        device_id: For errors.
        url: For errors (no secrets).
    """

    host: str
    port: int
    auth: CommunityData | UsmUserData
    context: ContextData
    timeout_s: float
    device_id: str
    url: str


class SnmpSession:
    """Requests to one agent through a (possibly shared) pysnmp engine.

    Args:
        engine: The pysnmp engine.
        peer: The agent and credentials.
    """

    def __init__(self, engine: SnmpEngine, peer: SnmpPeer) -> None:
        self.engine = engine
        self.peer = peer
        self._generator = cmdgen.GetCommandGenerator()
        self._target_name: str | None = None
        self._address: tuple[str, int] | None = None
        self._get_pdus: dict[tuple[str, ...], Any] = {}
        self._in_flight: set[asyncio.Future[tuple[Any, Any]]] = set()
        self._watching = False

    def _err(self, cls: type[DriverError], message: str) -> DriverError:
        return cls(message, device_id=self.peer.device_id, url=self.peer.url)

    async def _target(self) -> str:
        if self._target_name is None:
            transport = await UdpTransportTarget.create(
                (self.peer.host, self.peer.port), timeout=self.peer.timeout_s, retries=0
            )
            self._address = (str(transport.transport_address[0]), int(transport.transport_address[1]))
            # A transport domain of its own per lane: pysnmp opens one socket per domain.
            transport.TRANSPORT_DOMAIN = udp.DOMAIN_NAME + (self.peer.port % LANES,)
            self._target_name, _ = LCD.configure(self.engine, self.peer.auth, transport, self.peer.context.contextName)
            if isinstance(self.peer.auth, UsmUserData):
                self.engine.observer.register_observer(self._on_sm_failure, _SM_FAILURE)
                self._watching = True
        return self._target_name

    def _on_sm_failure(self, engine: SnmpEngine, execpoint: str, variables: dict[str, Any], ctx: object) -> None:
        """Observer of pysnmp's sm-failure point: a message from our agent failed our USM checks."""
        address = variables.get("transportAddress")
        if address is None or (str(address[0]), int(address[1])) != self._address:
            return
        indication = variables.get("statusInformation", {}).get("errorIndication")
        for future in self._in_flight:
            if not future.done():
                future.set_result((indication or errind.authenticationFailure, None))

    def close(self) -> None:
        """Stop watching the engine (the engine itself belongs to the caller)."""
        if self._watching:
            self.engine.observer.unregister_observer(self._on_sm_failure)
            self._watching = False

    async def get(self, oids: Sequence[str]) -> list[tuple[str, Any]]:
        """GET ``oids`` in one PDU; ``(oid, value)`` as answered (absent objects included).

        Raises:
            DeviceUnavailable: pysnmp gave up (timeout, transport error).
            DeviceAuthError: The agent refused, or we could not verify, our credentials.
            SnmpRefused: An SNMP error status.
        """
        key = tuple(oids)
        pdu = self._get_pdus.get(key)
        if pdu is None:
            pdu = self._get_pdus[key] = v2c.GetRequestPDU()
            v2c.apiPDU.set_defaults(pdu)
            v2c.apiPDU.set_varbinds(pdu, [(ObjectName(o), v2c.null) for o in oids])
        return await self._send("GET", pdu)

    async def set(self, binds: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """SET ``(oid, value)`` pairs in one PDU.

        Raises:
            DeviceUnavailable: pysnmp gave up (timeout, transport error).
            DeviceAuthError: The agent refused, or we could not verify, our credentials.
            SnmpRefused: An SNMP error status (wrongValue, notWritable...).
        """
        pdu = v2c.SetRequestPDU()
        v2c.apiPDU.set_defaults(pdu)
        v2c.apiPDU.set_varbinds(pdu, [(ObjectName(o), v) for o, v in binds])
        return await self._send("SET", pdu)

    async def _send(self, what: str, pdu: Any) -> list[tuple[str, Any]]:
        target = await self._target()
        # A fresh request-id per request: a late answer to an earlier one must not match.
        v2c.apiPDU.set_request_id(pdu, v1api.getNextRequestID())
        future: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()

        def answered(engine: SnmpEngine, handle: int, indication: Any, response: Any, ctx: object) -> None:
            if not future.done():
                future.set_result((indication, response))

        self._in_flight.add(future)
        try:
            self._generator.send_pdu(
                self.engine,
                target,
                self.peer.context.contextEngineId,
                self.peer.context.contextName,
                pdu,
                answered,
                None,
            )
            indication, response = await future
        finally:
            self._in_flight.discard(future)
        return self._answer(what, indication, response)

    def _answer(self, what: str, indication: Any, response: Any) -> list[tuple[str, Any]]:
        if indication:
            if isinstance(indication, errind.AuthenticationFailure):
                raise self._err(DeviceAuthError, f"SNMP {what}: {indication}: wrong v3 authentication key?")
            if isinstance(indication, _AUTH_INDICATIONS):
                raise self._err(DeviceAuthError, f"SNMP {what}: {indication}")
            raise self._err(DeviceUnavailable, f"SNMP {what}: {indication}")
        status = v2c.apiPDU.get_error_status(response)
        if status:
            raise SnmpRefused(
                status.prettyPrint(),
                int(v2c.apiPDU.get_error_index(response, muteErrors=True)),
                device_id=self.peer.device_id,
                url=self.peer.url,
            )
        return [(str(oid), value) for oid, value in v2c.apiPDU.get_varbinds(response)]
