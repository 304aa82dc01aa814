"""Heartbeats over HTTP and NATS (real nats-server on 127.0.0.1:4222) into readings."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from conftest import free_port, need, port_open
from wattwise.drivers.heartbeat import HeartbeatDriver, parse_heartbeat
from wattwise.errors import DeviceUnavailable
from wattwise.model.metrics import METRICS
from wattwise.sim.emulators.heartbeats import HeartbeatEmitter
from wattwise.sim.emulators.memory import MemoryDriver


def _backend() -> MemoryDriver:
    return MemoryDriver(
        {
            ("ep-1", "cpu_frac"): 0.4,
            ("ep-1", "memory_frac"): 0.5,
            ("ep-1", "network_bps"): 2e6,
            ("ep-1", "available"): 1.0,
            ("ep-2", "cpu_frac"): 0.9,
            ("ep-2", "lag_s"): 3.0,
            ("ep-2", "available"): 1.0,
        }
    )


def test_parse_rejects_bad_payloads() -> None:
    assert parse_heartbeat(b'{"id": "a", "seq": 1, "t_s": 5, "cpu_frac": 0.5}', 6.0).values == (("cpu_frac", 0.5),)
    for bad in (
        b"[]",
        b'{"id": "a", "seq": "1", "t_s": 1}',
        b'{"id": "a", "seq": 1, "t_s": 1, "cpu_frac": 7}',
        b'{"v": 2, "id": "a", "seq": 1, "t_s": 1}',
        b"not json",
    ):
        with pytest.raises(ValueError):
            parse_heartbeat(bad, 0.0)


async def test_http_heartbeats_and_rising_gap_of_a_dead_processor() -> None:
    backend = _backend()
    collector = HeartbeatDriver("dc1", expected=("ep-1", "ep-2", "ep-3"), timeout_s=0.3)
    port = await collector.listen_http()
    emitter = HeartbeatEmitter(backend, "dc1", ("ep-1", "ep-2"), "http", f"http://127.0.0.1:{port}", period_s=0.05)
    await emitter.start()
    await asyncio.sleep(0.3)
    readings = await collector.read()
    assert all(r.metric in METRICS for r in readings)
    v = {(r.device_id, r.metric): r.value for r in readings}
    assert v[("ep-1", "cpu_frac")] == 0.4
    assert v[("ep-2", "lag_s")] == 3.0
    assert v[("ep-1", "available")] == 1.0
    assert v[("ep-3", "available")] == 0.0  # expected but never heard
    assert v[("ep-1", "heartbeat_gap_s")] < 0.2

    backend.state[("ep-2", "available")] = 0.0  # the twin kills ep-2: its heartbeats stop
    await asyncio.sleep(0.5)
    v = {(r.device_id, r.metric): r.value for r in await collector.read()}
    assert v[("ep-2", "heartbeat_gap_s")] > 0.3
    assert v[("ep-2", "available")] == 0.0
    assert v[("ep-1", "available")] == 1.0
    async with httpx.AsyncClient() as client:
        bad = await client.post(f"http://127.0.0.1:{port}/v1/heartbeat", content=b'{"id": 3}')
    assert bad.status_code == 400
    assert collector.rejected == 1
    assert collector.lost == 0
    await emitter.stop()
    await collector.close()


async def test_nats_heartbeats() -> None:
    need(port_open("127.0.0.1", 4222), "nats-server is not listening on 127.0.0.1:4222")
    site = f"t{free_port()}"  # a subject space of our own
    collector = HeartbeatDriver(site, expected=("ep-1",))
    await collector.listen_nats()
    emitter = HeartbeatEmitter(_backend(), site, ("ep-1", "ep-2"), "nats", "nats://127.0.0.1:4222", period_s=0.05)
    await emitter.start()
    for _ in range(40):
        await asyncio.sleep(0.05)
        if collector.accepted >= 4:
            break
    v = {(r.device_id, r.metric): r.value for r in await collector.read()}
    assert v[("ep-2", "cpu_frac")] == 0.9
    assert v[("ep-1", "network_bps")] == 2e6
    await emitter.stop()
    await collector.close()


async def test_nats_down_is_unavailable() -> None:
    collector = HeartbeatDriver("dc1")
    with pytest.raises(DeviceUnavailable):
        await collector.listen_nats(f"nats://127.0.0.1:{free_port()}")
    await collector.close()
