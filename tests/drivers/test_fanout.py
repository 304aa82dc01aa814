"""FanoutDriver: partial failures keep the rest readable; actions go to the owner of their target."""

from __future__ import annotations

import pytest

from conftest import free_port
from wattwise.drivers.fanout import FanoutDriver
from wattwise.drivers.nut import NutDriver
from wattwise.drivers.nut_client import NutEndpoint
from wattwise.drivers.retry import RetryPolicy
from wattwise.errors import DeviceUnavailable
from wattwise.model.values import Action, ActionKind
from wattwise.sim.emulators.cache import CachedDriver, read_devices
from wattwise.sim.emulators.memory import MemoryDriver

FAST = RetryPolicy(timeout_s=0.3, attempts=1)


async def test_dead_member_does_not_fail_the_read_until_all_are_dead() -> None:
    live = MemoryDriver({("pdu-1/o1", "outlet_on"): 1.0, ("pdu-1/o1", "power_w"): 50.0})
    dead = NutDriver("ups-1", "ups", NutEndpoint(port=free_port()), retry=FAST)
    fan = FanoutDriver([live, dead], {"pdu-1/o1": live, "ups-1": dead})
    readings = await fan.read()
    assert {(r.device_id, r.metric) for r in readings} == {("pdu-1/o1", "outlet_on"), ("pdu-1/o1", "power_w")}
    assert isinstance(fan.errors["nut:ups-1"], DeviceUnavailable)
    assert (await fan.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="pdu-1/o1"))).ok
    assert live.state[("pdu-1/o1", "outlet_on")] == 0.0
    assert not (await fan.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="nowhere"))).ok
    with pytest.raises(DeviceUnavailable):
        await FanoutDriver([dead], {}).read()
    await fan.close()


async def test_cached_reads_are_indexed_and_dropped_on_apply() -> None:
    backend = MemoryDriver({("a", "power_w"): 1.0, ("b", "power_w"): 2.0})
    cached = CachedDriver(backend, max_age_s=60.0)
    assert [r.value for r in await read_devices(cached, ["b"])] == [2.0]
    backend.state[("b", "power_w")] = 3.0
    assert [r.value for r in await read_devices(cached, ["b"])] == [2.0]  # within max age: cached
    await cached.apply(Action(kind=ActionKind.POWER_CAP, target_id="b", value=2.5))
    after = {r.metric: r.value for r in await read_devices(cached, ["b"])}
    assert after == {"power_w": 2.5, "power_cap_w": 2.5}  # apply dropped the cache
    assert [r.device_id for r in await read_devices(backend, ["a"])] == ["a"]  # plain drivers are filtered
