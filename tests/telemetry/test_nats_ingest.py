"""NATS JetStream ingest: zero loss across a SIGKILL of the ingest process and a PostgreSQL restart."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
from nats.aio.client import Client
from tests.telemetry.conftest import PgCluster

from wattwise.model.clock import WallClock
from wattwise.model.values import Reading
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.store.postgres_store import PostgresStore
from wattwise.telemetry.codec import NATS_STREAM, nats_subject
from wattwise.telemetry.nats_ingest import NatsIngest, ensure_stream, publish_readings
from wattwise.telemetry.pipeline import IngestPipeline
from wattwise.telemetry.validate import ReadingValidator

DEVICES = [f"srv-{i}" for i in range(40)]
PER_MSG = 5


def _readings(msg_no: int, t0_s: float) -> list[Reading]:
    device = DEVICES[msg_no % len(DEVICES)]
    return [Reading(device, "power_w", 100.0 + k, t0_s + msg_no * 0.001 + k * 1e-6) for k in range(PER_MSG)]


async def _publish(
    nc: Client, n_msgs: int, t0_s: float, progress: list[int], pause_s: float = 0.008, hold: asyncio.Event | None = None
) -> None:
    """Publish ``n_msgs`` valid messages (paced), plus one garbage message every 50.

    With ``hold``, the second half waits until ``hold`` is set (the ingest is consuming).
    """
    js = nc.jetstream()
    for i in range(n_msgs):
        if hold is not None and i == n_msgs // 2:
            await hold.wait()
        await publish_readings(nc, "dc1", _readings(i, t0_s))
        if i % 50 == 0:
            await js.publish(nats_subject("dc1", "junk"), b"\x00not json")
        progress[0] = i + 1
        if i % 10 == 0:
            await asyncio.sleep(pause_s)


async def _acked(nc: Client, durable: str) -> int:
    try:
        info = await nc.jetstream().consumer_info(NATS_STREAM, durable)
    except nats.js.errors.NotFoundError:
        return 0
    return int(info.ack_floor.stream_seq)


async def _wait_for(cond: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    # polling a remote peer: there is no local event to wait on
    async with asyncio.timeout(timeout_s):
        while True:
            if await cond():
                return
            await asyncio.sleep(0.02)


def _expected_keys(n_msgs: int, t0_s: float) -> set[tuple[str, float]]:
    return {(r.device_id, r.t_s) for i in range(n_msgs) for r in _readings(i, t0_s)}


def _start_ingest(tmp_path: Path, nats_url: str) -> subprocess.Popen[bytes]:
    devices = tmp_path / "devices.txt"
    devices.write_text("\n".join(DEVICES))
    cmd = [sys.executable, "-c", "from wattwise.cli import main; main()", "ingest"]
    cmd += ["--devices-file", str(devices), "--store", "duckdb", "--duckdb-path", str(tmp_path / "ingest.duckdb")]
    cmd += ["--nats-url", nats_url, "--ack-wait-s", "2"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def test_sigkill_mid_stream_loses_nothing_and_stores_once(tmp_path: Path, nats_url: str) -> None:
    n_msgs, t0_s = 4000, WallClock().now_s() - 60.0
    nc = await nats.connect(nats_url)
    await ensure_stream(nc)
    progress = [0]
    consuming = asyncio.Event()
    publisher = asyncio.create_task(_publish(nc, n_msgs, t0_s, progress, hold=consuming))
    proc = _start_ingest(tmp_path, nats_url)
    await _wait_for(lambda: _ge(_acked(nc, "wattwise-ingest"), 1), 90)  # the CLI starts slowly on a busy box
    consuming.set()
    await _wait_for(lambda: _true(progress[0] > n_msgs // 2 + 100), 30)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert progress[0] < n_msgs, "the kill must happen mid-stream, while readings are still published"
    await publisher
    last_seq = (await nc.jetstream().stream_info(NATS_STREAM)).state.last_seq
    proc = _start_ingest(tmp_path, nats_url)
    await _wait_for(lambda: _ge(_acked(nc, "wattwise-ingest"), last_seq), 120)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    await nc.close()
    store = DuckDBStore(tmp_path / "ingest.duckdb")
    stored = store.training_set(0, t0_s + 3600)
    keys = list(zip(stored.device_id.tolist(), stored.t_s.tolist(), strict=True))
    assert len(keys) == len(set(keys)) == n_msgs * PER_MSG
    assert set(keys) == _expected_keys(n_msgs, t0_s)
    store.close()


async def _true(flag: bool) -> bool:
    return flag


async def _ge(value: Awaitable[int], floor: int) -> bool:
    return await value >= floor


async def _run_cmd(cmd: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


async def test_postgres_restart_during_ingest_loses_nothing(nats_url: str, pg_cluster: PgCluster) -> None:
    n_msgs, t0_s = 3000, WallClock().now_s() - 60.0
    store = PostgresStore(pg_cluster.dsn, connect_timeout_s=2)
    pipeline = IngestPipeline(store, ReadingValidator(DEVICES), WallClock(), retry_s=0.05, max_retry_s=0.5)
    ingest = NatsIngest(pipeline, nats_url, fetch_size=100, durable="pg-ingest", ack_wait_s=2.0)
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    nc = await nats.connect(nats_url)
    await ensure_stream(nc)
    progress = [0]
    publisher = asyncio.create_task(_publish(nc, n_msgs, t0_s, progress))
    await _wait_for(lambda: _ge(_acked(nc, "pg-ingest"), 1), 60)
    await _run_cmd(pg_cluster.stop_cmd("immediate"))  # a crash: no shutdown checkpoint
    await asyncio.sleep(0.5)
    await _run_cmd(pg_cluster.start_cmd())
    await publisher
    last_seq = (await nc.jetstream().stream_info(NATS_STREAM)).state.last_seq
    await _wait_for(lambda: _ge(_acked(nc, "pg-ingest"), last_seq), 120)
    stop.set()
    await task
    await nc.close()
    assert pipeline.store_failures >= 1, "the restart must have hit a write"
    stored = store.training_set(0, t0_s + 3600)
    keys = list(zip(stored.device_id.tolist(), stored.t_s.tolist(), strict=True))
    assert len(keys) == len(set(keys)) == n_msgs * PER_MSG
    assert set(keys) == _expected_keys(n_msgs, t0_s)
    assert pipeline.validator.stats.by_reason()["malformed"] == len(range(0, n_msgs, 50))
    store.close()
