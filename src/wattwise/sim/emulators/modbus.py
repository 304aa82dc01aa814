"""A twin-backed pymodbus TCP server speaking the wattwise racklet register map.

Reads refresh the register image from ``driver.read()``; writes to set-point registers become
``driver.apply`` (``PSU_SETPOINT`` / ``COOLING_SETPOINT``) and are answered with an
ILLEGAL_VALUE exception when the driver refuses them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Sequence

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from wattwise.drivers import modbus_map as mm
from wattwise.drivers.base import Driver
from wattwise.drivers.modbus import RackletIds
from wattwise.model.values import Action, ActionKind, Reading
from wattwise.sim.emulators.cache import read_devices

logger = logging.getLogger(__name__)

Values = dict[tuple[str, str], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _by_tag(readings: Sequence[Reading], device_id: str, metric: str, tag: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for r in readings:
        if r.device_id == device_id and r.metric == metric:
            tags = dict(r.tags)
            if tag in tags and tags[tag].isdigit():
                out[int(tags[tag])] = r.value
    return out


class ModbusRackletEmulator:
    """One racklet's power (unit 1) and cooling (unit 2) modules on a pymodbus TCP server.

    Args:
        driver: The backing Driver.
        ids: Site ids of the power module, its PSUs and the cooling module.
        port: TCP port on 127.0.0.1 (0 = pick a free one).
        fans: Fans reported by the cooling module.
        pumps: Pumps reported.
        leak_sensors: Leak sensors reported.
        inlet_setpoint_c: Initial inlet temperature set-point.
    """

    def __init__(
        self,
        driver: Driver,
        ids: RackletIds,
        port: int = 0,
        *,
        fans: int = 4,
        pumps: int = 2,
        leak_sensors: int = 2,
        inlet_setpoint_c: float = 24.0,
    ) -> None:
        self.driver = driver
        self.ids = ids
        self.port = port or _free_port()
        self.fans, self.pumps, self.leak_sensors = fans, pumps, leak_sensors
        self.inlet_setpoint_c = inlet_setpoint_c
        self._ids = tuple(dict.fromkeys((ids.power_id, *ids.psu_ids, *((ids.cooling_id,) if ids.cooling_id else ()))))
        devices = [self._device(mm.POWER_UNIT)]
        if ids.cooling_id is not None:
            devices.append(self._device(mm.COOLING_UNIT))
        self.server = ModbusTcpServer(devices, address=("127.0.0.1", self.port))
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """``modbus://127.0.0.1:<port>``."""
        return f"modbus://127.0.0.1:{self.port}"

    def _device(self, unit: int) -> SimDevice:
        blocks = (
            [SimData(0, count=1, datatype=DataType.BITS)],
            [SimData(0, count=1, datatype=DataType.BITS)],
            [SimData(mm.HOLDING_START, count=mm.HOLDING_SIZE, datatype=DataType.UINT16)],
            [SimData(0, count=mm.INPUT_SIZE, datatype=DataType.UINT16)],
        )
        return SimDevice(unit, simdata=blocks, action=functools.partial(self._action, unit))

    async def start(self) -> None:
        """Serve in the background; returns once the port accepts connections."""
        self._task = asyncio.create_task(self.server.serve_forever())
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writer.close()
            return
        raise TimeoutError(f"Modbus emulator did not listen on {self.port}")

    async def stop(self) -> None:
        """Shut the server down."""
        await self.server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _action(
        self,
        unit: int,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is not None:
            return await self._write(unit, address, [int(v) for v in set_values])
        readings = await read_devices(self.driver, self._ids)
        if function_code == 4:
            image = self._power_input(readings) if unit == mm.POWER_UNIT else self._cooling_input(readings)
        else:
            image = self._holding(unit, readings)
        current_registers[:] = image[start_address : start_address + len(current_registers)]
        return None

    def _power_input(self, readings: Sequence[Reading]) -> list[int]:
        image = [0] * mm.INPUT_SIZE
        v: Values = {(r.device_id, r.metric): r.value for r in readings if not r.tags}
        image[0] = mm.MAP_VERSION
        for f in mm.POWER_FIELDS:
            mm.encode(f, v.get((self.ids.power_id, f.metric)), image)
        lost = v.get((self.ids.power_id, "source_available"), 1.0) < 0.5
        failed = any(v.get((p, "available"), 1.0) < 0.5 for p in self.ids.psu_ids)
        image[mm.POWER_ALARM_REG] = mm.alarm_mask({"ac_input_lost": lost, "psu_fault": failed}, mm.POWER_ALARMS)
        image[mm.PSU_COUNT_REG] = min(len(self.ids.psu_ids), mm.MAX_PSUS)
        for i, pid in enumerate(self.ids.psu_ids[: mm.MAX_PSUS]):
            base = mm.PSU_BASE + i * mm.PSU_STRIDE
            for f in mm.PSU_FIELDS:
                mm.encode(f, v.get((pid, f.metric), 1.0 if f.metric == "available" else None), image, base)
        return image

    def _cooling_input(self, readings: Sequence[Reading]) -> list[int]:
        image = [0] * mm.INPUT_SIZE
        cid = self.ids.cooling_id or ""
        v: Values = {(r.device_id, r.metric): r.value for r in readings if not r.tags}
        image[0] = mm.MAP_VERSION
        for f in mm.COOLING_FIELDS:
            mm.encode(f, v.get((cid, f.metric)), image)
        leaks = _by_tag(readings, cid, "leak_detected", "sensor")
        fans = _by_tag(readings, cid, "fan_speed_rpm", "fan")
        pumps = _by_tag(readings, cid, "pump_speed_rpm", "pump")
        image[mm.LEAK_COUNT_REG], image[mm.FAN_COUNT_REG], image[mm.PUMP_COUNT_REG] = (
            self.leak_sensors,
            self.fans,
            self.pumps,
        )
        wet = v.get((cid, "leak_detected"), 0.0) >= 0.5
        for i in range(self.leak_sensors):
            image[mm.LEAK_BASE + i] = int(leaks.get(i + 1, 1.0 if wet and i == 0 else 0.0) >= 0.5)
        for i in range(self.fans):
            image[mm.FAN_BASE + i] = round(fans.get(i + 1, v.get((cid, "fan_speed_rpm"), 0.0)))
        for i in range(self.pumps):
            image[mm.PUMP_BASE + i] = round(pumps.get(i + 1, v.get((cid, "pump_speed_rpm"), 0.0)))
        failed_pump = any(image[mm.PUMP_BASE + i] == 0 for i in range(self.pumps)) and self.pumps > 0
        image[mm.COOLING_ALARM_REG] = mm.alarm_mask(
            {"leak": any(image[mm.LEAK_BASE : mm.LEAK_BASE + self.leak_sensors]), "pump_failed": failed_pump},
            mm.COOLING_ALARMS,
        )
        return image

    def _holding(self, unit: int, readings: Sequence[Reading]) -> list[int]:
        image = [0] * (mm.HOLDING_START + mm.HOLDING_SIZE)
        v: Values = {(r.device_id, r.metric): r.value for r in readings if not r.tags}
        if unit == mm.POWER_UNIT:
            for i, pid in enumerate(self.ids.psu_ids[: mm.MAX_PSUS]):
                image[mm.PSU_SETPOINT_BASE + i] = min(0xFFFF, max(0, round(v.get((pid, "setpoint_w"), 0.0))))
        else:
            image[mm.INLET_SETPOINT] = round(self.inlet_setpoint_c * 10.0)
        return image

    async def _write(self, unit: int, address: int, values: list[int]) -> ExcCodes | None:
        for offset, raw in enumerate(values):
            action = self._action_for(unit, address + offset, raw)
            if action is None:
                return ExcCodes.ILLEGAL_ADDRESS
            result = await self.driver.apply(action)
            if not result.ok:
                logger.info("Modbus emulator %s: refused %s: %s", self.ids.power_id, action.kind, result.message)
                return ExcCodes.ILLEGAL_VALUE
            if action.kind is ActionKind.COOLING_SETPOINT:
                self.inlet_setpoint_c = raw / 10.0
        return None

    def _action_for(self, unit: int, address: int, raw: int) -> Action | None:
        if unit == mm.POWER_UNIT:
            i = address - mm.PSU_SETPOINT_BASE
            if 0 <= i < min(len(self.ids.psu_ids), mm.MAX_PSUS):
                return Action(
                    kind=ActionKind.PSU_SETPOINT, target_id=self.ids.psu_ids[i], value=float(raw), reason="Modbus write"
                )
            return None
        if address == mm.INLET_SETPOINT and self.ids.cooling_id is not None:
            return Action(
                kind=ActionKind.COOLING_SETPOINT, target_id=self.ids.cooling_id, value=raw / 10.0, reason="Modbus write"
            )
        return None
