"""ModbusRackletDriver: a racklet's power and cooling modules over Modbus TCP (pymodbus).

Reads follow the register map in :mod:`wattwise.drivers.modbus_map`
(docs/modbus-register-map.md): four requests per poll (input and holding registers of each
unit). ``PSU_SETPOINT`` writes a PSU's output set-point (W); ``COOLING_SETPOINT`` writes the
inlet temperature set-point (°C). A device exception (illegal value) is a refusal
(``ok=False``); transport failures are ``DeviceUnavailable``.

One reading per (device, metric) per poll, since telemetry and the store key readings on
(device, metric, time). A cooling module's leak sensors, fans and pumps have no site ids, so
each kind is aggregated into the one reading an operator acts on:

* ``leak_detected``: 1 when any leak sensor is wet.
* ``fan_speed_rpm``: the slowest fan (0 as soon as one fan stops); ``pump_speed_rpm``: the
  slowest pump. Which fan or pump failed is in the alarm register (``last_alarms``).
* ``inlet_setpoint_c``: the inlet temperature set-point (holding register), apart from the
  measured ``inlet_temp_c``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from wattwise.drivers import modbus_map as mm
from wattwise.drivers.base import DeviceHealth
from wattwise.drivers.health import HealthTracker
from wattwise.drivers.retry import RetryPolicy, call_with_retries
from wattwise.errors import DeviceProtocolError, DeviceUnavailable, DriverError
from wattwise.model.values import Action, ActionKind, ActionResult, Reading

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RackletIds:
    """Site ids of what one racklet's Modbus endpoint exposes.

    Attributes:
        power_id: The power module (DC bus).
        psu_ids: Its PSUs, in register order.
        cooling_id: The cooling module, or ``None`` when the racklet has none on this endpoint.
    """

    power_id: str
    psu_ids: Sequence[str] = ()
    cooling_id: str | None = None


class ModbusDeviceError(DeviceProtocolError):
    """The device answered with a Modbus exception (illegal address/value, busy...)."""


def _fields(device_id: str, fields: Sequence[mm.Field], ir: list[int], base: int, t_s: float) -> list[Reading]:
    values = ((f.metric, mm.decode(f, ir, base)) for f in fields)
    return [Reading(device_id, metric, value, t_s) for metric, value in values if value is not None]


class ModbusRackletDriver:
    """One racklet (power + cooling module) on one Modbus TCP endpoint.

    Args:
        ids: Site ids of the modules and PSUs.
        host: Endpoint host.
        port: Endpoint port.
        retry: Timeout, attempts and back-off per request.
        now_s: Time source.
    """

    def __init__(
        self,
        ids: RackletIds,
        host: str = "127.0.0.1",
        port: int = 502,
        *,
        retry: RetryPolicy | None = None,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        self.name = f"modbus:{ids.power_id}"
        self.ids = ids
        self.url = f"modbus://{host}:{port}"
        self.retry = retry or RetryPolicy()
        self.now_s = now_s
        self.tracker = HealthTracker(ids.power_id, now_s)
        self.last_alarms: list[str] = []
        self._client = AsyncModbusTcpClient(
            host, port=port, timeout=self.retry.timeout_s, retries=0, reconnect_delay=0.0
        )

    def supports(self, kind: ActionKind) -> bool:
        """PSU output set-points and the cooling inlet set-point."""
        return kind in (ActionKind.PSU_SETPOINT, ActionKind.COOLING_SETPOINT)

    def health(self) -> DeviceHealth:
        """Availability as last seen."""
        return self.tracker.health()

    def _err(self, message: str) -> DeviceUnavailable:
        return DeviceUnavailable(message, device_id=self.ids.power_id, url=self.url)

    async def _ensure(self) -> None:
        if self._client.connected:
            return
        try:
            ok = await self._client.connect()
        except (ModbusException, OSError) as err:
            raise self._err(f"cannot connect: {err}") from err
        if not ok:
            raise self._err("cannot connect")

    async def _registers(self, unit: int, table: str, address: int, count: int) -> list[int]:
        async def attempt() -> list[int]:
            await self._ensure()
            try:
                if table == "input":
                    rr = await self._client.read_input_registers(address, count=count, device_id=unit)
                else:
                    rr = await self._client.read_holding_registers(address, count=count, device_id=unit)
            except (ModbusException, OSError) as err:
                self._client.close()
                raise self._err(f"read unit {unit} {table} {address}+{count}: {err}") from err
            if rr.isError():
                raise ModbusDeviceError(
                    f"unit {unit} {table} {address}+{count}: {rr}", device_id=self.ids.power_id, url=self.url
                )
            return list(rr.registers)

        try:
            return await call_with_retries(
                attempt, self.retry, what=f"read unit {unit}", device_id=self.ids.power_id, url=self.url
            )
        except DeviceUnavailable:
            self._client.close()
            raise

    async def read(self) -> list[Reading]:
        """Poll both modules.

        Raises:
            DriverError: The endpoint is unreachable or answered with exceptions.
        """
        try:
            readings = await self._read_power()
            if self.ids.cooling_id is not None:
                readings += await self._read_cooling(self.ids.cooling_id)
        except DriverError as err:
            self.tracker.failed(err)
            raise
        self.tracker.ok()
        return readings

    async def _read_power(self) -> list[Reading]:
        ir = await self._registers(mm.POWER_UNIT, "input", 0, mm.INPUT_SIZE)
        if ir[0] != mm.MAP_VERSION:
            raise DeviceProtocolError(
                f"register map version {ir[0]}, expected {mm.MAP_VERSION}", device_id=self.ids.power_id, url=self.url
            )
        n = min(ir[mm.PSU_COUNT_REG], mm.MAX_PSUS)
        hr = await self._registers(mm.POWER_UNIT, "holding", mm.PSU_SETPOINT_BASE, max(1, n))
        t_s = self.now_s()
        out = _fields(self.ids.power_id, mm.POWER_FIELDS, ir, 0, t_s)
        alarms = mm.alarm_names(ir[mm.POWER_ALARM_REG], mm.POWER_ALARMS)
        out.append(Reading(self.ids.power_id, "source_available", 0.0 if "ac_input_lost" in alarms else 1.0, t_s))
        for i in range(n):
            pid = self.ids.psu_ids[i] if i < len(self.ids.psu_ids) else f"{self.ids.power_id}/psu{i + 1}"
            base = mm.PSU_BASE + i * mm.PSU_STRIDE
            out += _fields(pid, mm.PSU_FIELDS, ir, base, t_s)
            out.append(Reading(pid, "setpoint_w", float(hr[i]), t_s))
        self.last_alarms = alarms
        return out

    async def _read_cooling(self, cid: str) -> list[Reading]:
        ir = await self._registers(mm.COOLING_UNIT, "input", 0, mm.INPUT_SIZE)
        hr = await self._registers(mm.COOLING_UNIT, "holding", mm.INLET_SETPOINT, 1)
        t_s = self.now_s()
        out = _fields(cid, mm.COOLING_FIELDS, ir, 0, t_s)
        leaks = ir[mm.LEAK_BASE : mm.LEAK_BASE + min(ir[mm.LEAK_COUNT_REG], mm.MAX_LEAKS)]
        fans = ir[mm.FAN_BASE : mm.FAN_BASE + min(ir[mm.FAN_COUNT_REG], mm.MAX_FANS)]
        pumps = ir[mm.PUMP_BASE : mm.PUMP_BASE + min(ir[mm.PUMP_COUNT_REG], mm.MAX_PUMPS)]
        # One reading per quantity (see the module docstring): the sensors, fans and pumps of
        # a cooling module have no site ids of their own.
        out.append(Reading(cid, "leak_detected", 1.0 if any(leaks) else 0.0, t_s))
        if fans:
            out.append(Reading(cid, "fan_speed_rpm", float(min(fans)), t_s))
        if pumps:
            out.append(Reading(cid, "pump_speed_rpm", float(min(pumps)), t_s))
        out.append(Reading(cid, "inlet_setpoint_c", hr[0] / 10.0, t_s))
        self.last_alarms += mm.alarm_names(ir[mm.COOLING_ALARM_REG], mm.COOLING_ALARMS)
        return out

    def register_for(self, action: Action) -> tuple[int, int, int]:
        """``(unit, holding address, raw value)`` that carries out ``action``.

        Raises:
            ValueError: Not an action this endpoint can take.
        """
        if action.value is None:
            raise ValueError(f"{action.kind} needs a value")
        if action.kind is ActionKind.PSU_SETPOINT and action.target_id in self.ids.psu_ids:
            raw = round(action.value)
            if not 0 <= raw <= 0xFFFF:
                raise ValueError(f"set-point {action.value} W outside 0..65535 W")
            return mm.POWER_UNIT, mm.PSU_SETPOINT_BASE + list(self.ids.psu_ids).index(action.target_id), raw
        if action.kind is ActionKind.COOLING_SETPOINT and action.target_id == self.ids.cooling_id:
            raw = round(action.value * 10.0)
            if not 0 <= raw <= 0x7FFF:
                raise ValueError(f"inlet set-point {action.value} °C out of range")
            return mm.COOLING_UNIT, mm.INLET_SETPOINT, raw
        raise ValueError(f"{action.kind} on {action.target_id} is not served by {self.url}")

    async def apply(self, action: Action) -> ActionResult:
        """Write the set-point register; a Modbus exception answer is a refusal.

        Raises:
            DeviceUnavailable: The endpoint is unreachable.
        """
        try:
            unit, address, raw = self.register_for(action)
        except ValueError as err:
            return ActionResult(command_id=action.command_id, ok=False, message=str(err), t_s=self.now_s())

        async def attempt() -> str:
            await self._ensure()
            try:
                wr = await self._client.write_register(address, raw, device_id=unit)
            except (ModbusException, OSError) as err:
                self._client.close()
                raise self._err(f"write unit {unit} {address}: {err}") from err
            return str(wr) if wr.isError() else ""

        refusal = await call_with_retries(
            attempt, self.retry, what=f"write {address}", device_id=self.ids.power_id, url=self.url
        )
        logger.info(
            "device %s: write unit %d reg %d = %d -> %s", self.ids.power_id, unit, address, raw, refusal or "ok"
        )
        return ActionResult(
            command_id=action.command_id,
            ok=not refusal,
            message=refusal or f"unit {unit} register {address} = {raw}",
            t_s=self.now_s(),
        )

    async def close(self) -> None:
        """Close the connection."""
        self._client.close()
