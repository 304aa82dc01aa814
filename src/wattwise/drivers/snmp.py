"""SnmpPduDriver: APC PowerNet-MIB switched/metered rack PDUs over SNMP v2c or v3 (pysnmp 7.1).

Per poll, one GET (in chunks) of: rPDUIdentDevicePowerWatts, per-phase rPDULoadStatusLoad
(deci-amps, emitted as ``current_l1_a``..``current_l3_a``), per-outlet
rPDUOutletControlOutletCommand (the outlet state, as APC reports it on GET) and
rPDUOutletStatusLoad (deci-amps, metered-by-outlet models; absent objects are skipped).
Outlet actions SET rPDUOutletControlOutletCommand (1 on, 2 off, 3 reboot).

Requests go through :class:`wattwise.drivers.snmp_session.SnmpSession` (pysnmp's engine set
up once per agent, the GET PDU built once).

SNMP cannot tell a wrong v2c community from a dead agent (agents drop such requests): both
are ``DeviceUnavailable``. SNMPv3 credentials the agent answers about are ``DeviceAuthError``:
a wrong authentication key (the agent's signed report fails our check), an unknown user name
or a decryption error reported by the agent. An agent that stays silent (snmpsimd 0.4.5 does
for an unknown user at authNoPriv and for a wrong privacy key; net-snmp's snmpget times out
there too) reads as ``DeviceUnavailable`` (see tests/drivers/test_snmp.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_SHA,
    USM_PRIV_CFB128_AES,
    CommunityData,
    ContextData,
    SnmpEngine,
    UsmUserData,
)
from pysnmp.proto.rfc1902 import Integer32
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from wattwise.drivers.base import DeviceHealth
from wattwise.drivers.health import HealthTracker
from wattwise.drivers.retry import RetryPolicy, call_with_retries
from wattwise.drivers.snmp_session import SnmpPeer, SnmpRefused, SnmpSession
from wattwise.errors import DeviceProtocolError, DriverError
from wattwise.model.metrics import phase_current_metric
from wattwise.model.values import Action, ActionKind, ActionResult, Reading
from wattwise.units import deci_to_unit

logger = logging.getLogger(__name__)

RPDU = "1.3.6.1.4.1.318.1.1.12"
OID_NAME = f"{RPDU}.1.1.0"
OID_MODEL = f"{RPDU}.1.5.0"
OID_NUM_OUTLETS = f"{RPDU}.1.8.0"
OID_NUM_PHASES = f"{RPDU}.1.9.0"
OID_POWER_W = f"{RPDU}.1.16.0"
OID_PHASE_LOAD = f"{RPDU}.2.3.1.1.2"  # .N, tenths of A
OID_OUTLET_NAME = f"{RPDU}.3.3.1.1.2"  # .N
OID_OUTLET_COMMAND = f"{RPDU}.3.3.1.1.4"  # .N; GET 1 on / 2 off; SET 1 on, 2 off, 3 reboot
OID_OUTLET_STATE = f"{RPDU}.3.5.1.1.4"  # .N; 1 on / 2 off
OID_OUTLET_LOAD = f"{RPDU}.3.5.1.1.7"  # .N, tenths of A
COMMANDS = {ActionKind.OUTLET_ON: 1, ActionKind.OUTLET_OFF: 2, ActionKind.OUTLET_CYCLE: 3}
SET_CHUNK = 24
"""Most outlet commands in one SET (24 varbinds fit a 1 472-byte datagram with room to spare)."""
MAX_VARBINDS = 32


@dataclass(frozen=True, slots=True)
class SnmpTarget:
    """Where and how to reach one agent.

    Attributes:
        host: Agent host.
        port: Agent UDP port.
        community: v2c community (used when ``v3_user`` is empty).
        v3_user: USM user name; enables SNMPv3 (authPriv when both keys are set).
        v3_auth_key: Authentication pass phrase (HMAC-SHA-96).
        v3_priv_key: Privacy pass phrase (AES-128).
        v3_context: SNMPv3 context name.
    """

    host: str = "127.0.0.1"
    port: int = 161
    community: str = "public"
    v3_user: str = ""
    v3_auth_key: str = ""
    v3_priv_key: str = ""
    v3_context: str = ""

    @property
    def url(self) -> str:
        """``snmp://host:port`` (no secrets)."""
        return f"snmp://{self.host}:{self.port}"

    def auth(self) -> CommunityData | UsmUserData:
        """Pysnmp auth data for this target."""
        if not self.v3_user:
            return CommunityData(self.community, mpModel=1)
        return UsmUserData(
            self.v3_user,
            authKey=self.v3_auth_key or None,
            privKey=self.v3_priv_key or None,
            authProtocol=USM_AUTH_HMAC96_SHA if self.v3_auth_key else None,
            privProtocol=USM_PRIV_CFB128_AES if self.v3_priv_key else None,
        )


def _absent(value: object) -> bool:
    return isinstance(value, NoSuchObject | NoSuchInstance | EndOfMibView)


class SnmpPduDriver:
    """One APC rack PDU as a wattwise Driver.

    Args:
        device_id: Site id of the PDU.
        target: Agent address and credentials.
        outlet_ids: Site ids by outlet number (default ``<device_id>.outlet<N>``).
        retry: Timeout, attempts and back-off per request.
        engine: A shared pysnmp engine (one per process is cheaper than one per PDU).
        now_s: Time source.
    """

    def __init__(
        self,
        device_id: str,
        target: SnmpTarget,
        *,
        outlet_ids: Mapping[int, str] | None = None,
        retry: RetryPolicy | None = None,
        engine: SnmpEngine | None = None,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        self.name = f"snmp:{device_id}"
        self.device_id = device_id
        self.target = target
        self.outlet_ids = dict(outlet_ids or {})
        self.retry = retry or RetryPolicy()
        self.now_s = now_s
        self.tracker = HealthTracker(device_id, now_s)
        self._own_engine = engine is None
        self._engine = engine or SnmpEngine()
        self._counts: tuple[int, int] | None = None
        # Auth and context built once: pysnmp keys its engine configuration on these objects.
        context = ContextData(contextName=target.v3_context) if target.v3_context else ContextData()
        self._session = SnmpSession(
            self._engine,
            SnmpPeer(target.host, target.port, target.auth(), context, self.retry.timeout_s, device_id, target.url),
        )

    def supports(self, kind: ActionKind) -> bool:
        """Outlet on/off/reboot."""
        return kind in COMMANDS

    def health(self) -> DeviceHealth:
        """Availability as last seen."""
        return self.tracker.health()

    def outlet_id(self, n: int) -> str:
        """Site id of outlet ``n``."""
        return self.outlet_ids.get(n) or f"{self.device_id}.outlet{n}"

    def _err(self, cls: type[DriverError], message: str) -> DriverError:
        return cls(message, device_id=self.device_id, url=self.target.url)

    async def _get(self, oids: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i in range(0, len(oids), MAX_VARBINDS):
            chunk = oids[i : i + MAX_VARBINDS]

            async def attempt(chunk: Sequence[str] = chunk) -> list[tuple[str, Any]]:
                return await self._session.get(chunk)

            answers = await call_with_retries(
                attempt, self.retry, what="SNMP GET", device_id=self.device_id, url=self.target.url
            )
            out.update({oid: v for oid, v in answers if not _absent(v)})
        return out

    async def identify(self) -> dict[str, str]:
        """Name, model, outlet and phase counts (as text), for ``wattwise probe``."""
        got = await self._get([OID_NAME, OID_MODEL, OID_NUM_OUTLETS, OID_NUM_PHASES, OID_POWER_W])
        return {oid.rsplit(".", 2)[-2]: v.prettyPrint() for oid, v in got.items()}

    async def read(self) -> list[Reading]:
        """Poll power, phase loads and outlet states/loads.

        Raises:
            DriverError: The agent is unreachable, refused our credentials, or answered garbage.
        """
        try:
            readings = await self._read()
        except SnmpRefused as err:
            wrapped = self._err(DeviceProtocolError, f"SNMP GET refused: {err}")
            self.tracker.failed(wrapped)
            raise wrapped from err
        except DriverError as err:
            self.tracker.failed(err)
            raise
        self.tracker.ok()
        return readings

    async def _read(self) -> list[Reading]:
        if self._counts is None:
            got = await self._get([OID_NUM_OUTLETS, OID_NUM_PHASES])
            try:
                self._counts = (int(got.get(OID_NUM_OUTLETS, 0)), max(1, int(got.get(OID_NUM_PHASES, 1))))
            except (TypeError, ValueError) as err:
                raise self._err(DeviceProtocolError, f"outlet/phase counts are not integers: {got}") from err
        outlets, phases = self._counts
        oids = [OID_POWER_W] + [f"{OID_PHASE_LOAD}.{p}" for p in range(1, phases + 1)]
        oids += [f"{OID_OUTLET_COMMAND}.{n}" for n in range(1, outlets + 1)]
        oids += [f"{OID_OUTLET_LOAD}.{n}" for n in range(1, outlets + 1)]
        got = await self._get(oids)
        t_s = self.now_s()
        try:
            return self._readings(got, outlets, phases, t_s)
        except (TypeError, ValueError) as err:
            raise self._err(DeviceProtocolError, f"non-numeric PowerNet value: {err}") from err

    def _readings(self, got: dict[str, Any], outlets: int, phases: int, t_s: float) -> list[Reading]:
        out: list[Reading] = []
        if OID_POWER_W in got:
            out.append(Reading(self.device_id, "power_w", float(int(got[OID_POWER_W])), t_s))
        for p in range(1, phases + 1):
            if (v := got.get(f"{OID_PHASE_LOAD}.{p}")) is not None:
                # One metric per phase: L1..L3 share (device, t_s), so the phase must be in the metric.
                metric = phase_current_metric(p)
                out.append(
                    Reading(self.device_id, metric, deci_to_unit(float(int(v))), t_s, tags=(("phase", f"L{p}"),))
                )
        for n in range(1, outlets + 1):
            oid = self.outlet_id(n)
            if (state := got.get(f"{OID_OUTLET_COMMAND}.{n}")) is not None and int(state) in (1, 2):
                out.append(Reading(oid, "outlet_on", 1.0 if int(state) == 1 else 0.0, t_s))
            if (load := got.get(f"{OID_OUTLET_LOAD}.{n}")) is not None:
                out.append(Reading(oid, "current_a", deci_to_unit(float(int(load))), t_s))
        return out

    def outlet_number(self, target_id: str) -> int | None:
        """Outlet number of a site id on this PDU, if it is one."""
        for n, oid in self.outlet_ids.items():
            if oid == target_id:
                return n
        prefix = f"{self.device_id}.outlet"
        tail = target_id[len(prefix) :] if target_id.startswith(prefix) else ""
        return int(tail) if tail.isdigit() else None

    async def apply(self, action: Action) -> ActionResult:
        """SET the outlet command; an SNMP error status (wrongValue...) is a refusal.

        Raises:
            DriverError: The agent is unreachable or refused our credentials.
        """
        n = self.outlet_number(action.target_id)
        if action.kind not in COMMANDS or n is None:
            return self._not_an_outlet(action)
        try:
            await self._set([(action, n)])
        except SnmpRefused as err:
            return ActionResult(command_id=action.command_id, ok=False, message=f"outlet {n}: {err}", t_s=self.now_s())
        return self._done(action, n, self.now_s())

    async def apply_many(self, actions: Sequence[Action]) -> list[ActionResult]:
        """Outlet commands of several outlets in as few SETs as possible (``SET_CHUNK`` varbinds each).

        A chunk the agent refuses (an SNMP error status names one varbind, and an agent may
        have applied none of them) is sent again one action at a time, so each action gets
        its own answer; commands are idempotent, so a repeat is harmless.

        Raises:
            DriverError: The agent is unreachable or refused our credentials.
        """
        out: dict[int, ActionResult] = {}
        outlets: list[tuple[int, Action, int]] = []
        for i, action in enumerate(actions):
            n = self.outlet_number(action.target_id)
            if action.kind not in COMMANDS or n is None:
                out[i] = self._not_an_outlet(action)
            else:
                outlets.append((i, action, n))
        for start in range(0, len(outlets), SET_CHUNK):
            chunk = outlets[start : start + SET_CHUNK]
            try:
                await self._set([(action, n) for _, action, n in chunk])
            except SnmpRefused:
                for i, action, _ in chunk:
                    out[i] = await self.apply(action)
                continue
            t_s = self.now_s()
            for i, action, n in chunk:
                out[i] = self._done(action, n, t_s)
        return [out[i] for i in range(len(actions))]

    async def _set(self, outlets: Sequence[tuple[Action, int]]) -> None:
        """One SET of the outlet command of every ``(action, outlet number)``, with retries.

        Raises:
            SnmpRefused: The agent answered with an error status.
            DriverError: The agent is unreachable or refused our credentials.
        """
        binds = [(f"{OID_OUTLET_COMMAND}.{n}", Integer32(COMMANDS[a.kind])) for a, n in outlets]

        async def attempt() -> list[tuple[str, Any]]:
            return await self._session.set(binds)

        await call_with_retries(attempt, self.retry, what="SNMP SET", device_id=self.device_id, url=self.target.url)

    def _not_an_outlet(self, action: Action) -> ActionResult:
        return ActionResult(
            command_id=action.command_id,
            ok=False,
            t_s=self.now_s(),
            message=f"{action.kind} on {action.target_id} is not an outlet action of {self.device_id}",
        )

    def _done(self, action: Action, n: int, t_s: float) -> ActionResult:
        command = COMMANDS[action.kind]
        logger.info("device %s: outlet %d command %d (command %s)", self.device_id, n, command, action.command_id)
        return ActionResult(command_id=action.command_id, ok=True, message=f"outlet {n} command {command}", t_s=t_s)

    async def close(self) -> None:
        """Release the engine's transport when this driver owns it."""
        self._session.close()
        if self._own_engine:
            self._engine.close_dispatcher()
