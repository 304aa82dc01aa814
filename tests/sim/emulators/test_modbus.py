"""Closed loop over Modbus TCP: ModbusRackletDriver → pymodbus emulator → Driver state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from conftest import free_port
from wattwise.drivers.modbus import ModbusRackletDriver, RackletIds
from wattwise.drivers.retry import RetryPolicy
from wattwise.errors import DeviceProtocolError, DeviceUnavailable
from wattwise.model.values import Action, ActionKind, Reading
from wattwise.sim.emulators.memory import MemoryDriver
from wattwise.sim.emulators.modbus import ModbusRackletEmulator

IDS = RackletIds("rk-1/power", ("rk-1/psu-1", "rk-1/psu-2", "rk-1/psu-3"), "rk-1/cooling")
FAST = RetryPolicy(timeout_s=1.0, attempts=2, backoff_s=0.01)


def _backend() -> MemoryDriver:
    state = {
        ("rk-1/power", "dc_voltage_v"): 48.12,
        ("rk-1/power", "dc_current_a"): 62.5,
        ("rk-1/power", "output_power_w"): 3007.0,
        ("rk-1/power", "voltage_v"): 239.8,
        ("rk-1/power", "temperature_c"): -3.5,
        ("rk-1/cooling", "inlet_temp_c"): 24.3,
        ("rk-1/cooling", "outlet_temp_c"): 33.9,
        ("rk-1/cooling", "coolant_flow_lpm"): 41.5,
        ("rk-1/cooling", "heat_w"): 3100.0,
        ("rk-1/cooling", "fan_speed_rpm"): 5200.0,
        ("rk-1/cooling", "pump_speed_rpm"): 2900.0,
        ("rk-1/cooling", "leak_detected"): 0.0,
    }
    for i, psu in enumerate(IDS.psu_ids):
        state.update(
            {
                (psu, "setpoint_w"): 1000.0,
                (psu, "output_power_w"): 1002.0 + i,
                (psu, "available"): 1.0,
                (psu, "dc_voltage_v"): 48.1,
                (psu, "ripple_v"): 0.12,
            }
        )
    return MemoryDriver(state)


@pytest.fixture
async def racklet() -> AsyncIterator[tuple[MemoryDriver, ModbusRackletEmulator]]:
    backend = _backend()
    emulator = ModbusRackletEmulator(backend, IDS)
    await emulator.start()
    try:
        yield backend, emulator
    finally:
        await emulator.stop()


async def test_register_map_round_trips_si_values(racklet: tuple[MemoryDriver, ModbusRackletEmulator]) -> None:
    _, emulator = racklet
    driver = ModbusRackletDriver(IDS, port=emulator.port, retry=FAST)
    readings = await driver.read()
    v = {(r.device_id, r.metric): r.value for r in readings if not r.tags}
    assert v[("rk-1/power", "dc_voltage_v")] == pytest.approx(48.12)
    assert v[("rk-1/power", "dc_current_a")] == pytest.approx(62.5)
    assert v[("rk-1/power", "output_power_w")] == 3007.0
    assert v[("rk-1/power", "temperature_c")] == pytest.approx(-3.5)  # signed register
    assert v[("rk-1/psu-2", "output_power_w")] == 1003.0
    assert v[("rk-1/psu-3", "ripple_v")] == pytest.approx(0.12)
    assert v[("rk-1/cooling", "coolant_flow_lpm")] == pytest.approx(41.5)
    assert ("rk-1/psu-1", "temperature_c") not in v  # not measured → "not available", not 0
    assert v[("rk-1/cooling", "leak_detected")] == 0.0
    fans = [r for r in readings if r.metric == "fan_speed_rpm"]
    assert [(r.device_id, r.value) for r in fans] == [("rk-1/cooling", 5200.0)]  # slowest of 4 fans
    assert v[("rk-1/cooling", "pump_speed_rpm")] == 2900.0
    assert v[("rk-1/cooling", "inlet_setpoint_c")] == 24.0
    assert driver.last_alarms == []
    await driver.close()


async def test_psu_setpoint_and_leak_close_the_loop(racklet: tuple[MemoryDriver, ModbusRackletEmulator]) -> None:
    backend, emulator = racklet
    driver = ModbusRackletDriver(IDS, port=emulator.port, retry=FAST)
    result = await driver.apply(Action(kind=ActionKind.PSU_SETPOINT, target_id="rk-1/psu-2", value=1400.0))
    assert result.ok, result.message
    assert backend.state[("rk-1/psu-2", "setpoint_w")] == 1400.0
    assert (await driver.apply(Action(kind=ActionKind.COOLING_SETPOINT, target_id="rk-1/cooling", value=21.5))).ok
    backend.state[("rk-1/cooling", "leak_detected")] = 1.0
    v = {(r.device_id, r.metric, r.tags): r.value for r in await driver.read()}
    assert v[("rk-1/psu-2", "setpoint_w", ())] == 1400.0
    assert v[("rk-1/psu-1", "setpoint_w", ())] == 1000.0
    assert v[("rk-1/cooling", "leak_detected", ())] == 1.0
    assert v[("rk-1/cooling", "inlet_setpoint_c", ())] == 21.5
    assert "leak" in driver.last_alarms
    not_mine = await driver.apply(Action(kind=ActionKind.PSU_SETPOINT, target_id="rk-9/psu-1", value=10.0))
    assert not not_mine.ok
    await driver.close()


async def test_refused_write_is_not_ok(racklet: tuple[MemoryDriver, ModbusRackletEmulator]) -> None:
    backend, emulator = racklet

    async def refuse(action: Action) -> object:
        from wattwise.model.values import ActionResult

        return ActionResult(command_id=action.command_id, ok=False, message="interlock")

    backend.apply = refuse  # type: ignore[method-assign,assignment]
    driver = ModbusRackletDriver(IDS, port=emulator.port, retry=FAST)
    result = await driver.apply(Action(kind=ActionKind.PSU_SETPOINT, target_id="rk-1/psu-1", value=900.0))
    assert not result.ok
    await driver.close()


async def test_dead_endpoint_is_unavailable_fast() -> None:
    driver = ModbusRackletDriver(IDS, port=free_port(), retry=FAST)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(DeviceUnavailable):
        await driver.read()
    assert loop.time() - t0 < 3.0
    assert not driver.health().available
    await driver.close()


async def test_wrong_unit_map_is_protocol_error(racklet: tuple[MemoryDriver, ModbusRackletEmulator]) -> None:
    _, emulator = racklet
    emulator_less = ModbusRackletDriver(RackletIds("x", (), "y"), port=emulator.port, retry=FAST)
    # The racklet serves a cooling unit, so this works; a unit that does not exist answers an exception.
    await emulator_less.read()
    await emulator_less.close()
    no_cooling = ModbusRackletEmulator(_backend(), RackletIds("rk-2/power", ("p",)))
    await no_cooling.start()
    driver = ModbusRackletDriver(RackletIds("rk-2/power", ("p",), "rk-2/cooling"), port=no_cooling.port, retry=FAST)
    with pytest.raises(DeviceProtocolError):
        await driver.read()
    await driver.close()
    await no_cooling.stop()


class _OneFanStoppedSecondSensorWet(MemoryDriver):
    """Reports fan 3 stopped and leak sensor 2 wet, as a module with per-unit readings would."""

    async def read(self) -> list[Reading]:
        extra = [
            Reading("rk-1/cooling", "fan_speed_rpm", 0.0, 0.0, tags=(("fan", "3"),)),
            Reading("rk-1/cooling", "leak_detected", 1.0, 0.0, tags=(("sensor", "2"),)),
        ]
        return [*await super().read(), *extra]


async def test_one_reading_per_quantity_of_the_cooling_module() -> None:
    backend = _OneFanStoppedSecondSensorWet(_backend().state)
    emulator = ModbusRackletEmulator(backend, IDS, fans=4, leak_sensors=3)
    await emulator.start()
    driver = ModbusRackletDriver(IDS, port=emulator.port, retry=FAST)
    try:
        readings = await driver.read()
    finally:
        await driver.close()
        await emulator.stop()
    cooling = [(r.metric, r.value) for r in readings if r.device_id == "rk-1/cooling"]
    assert len({m for m, _ in cooling}) == len(cooling)  # no metric twice in one poll
    v = dict(cooling)
    assert v["fan_speed_rpm"] == 0.0  # the slowest of 4 fans: one has stopped
    assert v["leak_detected"] == 1.0  # sensor 2 of 3 is wet
    assert v["pump_speed_rpm"] == 2900.0
    assert {"leak", "pump_failed"} & set(driver.last_alarms) == {"leak"}
