"""Store benchmarks: validated ingest throughput, latest-per-device latency, bus → stored latency.

Run: .venv/bin/python bench/store_ingest.py [--quick]
Each figure is printed next to its baseline (row-by-row insertion, or a naive query) measured
in the same run, and the whole report is written to bench/reports/store.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from wattwise.model.clock import WallClock  # noqa: E402
from wattwise.store import sql  # noqa: E402
from wattwise.store.base import WriteResult  # noqa: E402
from wattwise.store.duckdb_store import DuckDBStore  # noqa: E402
from wattwise.store.postgres_store import PostgresStore  # noqa: E402
from wattwise.telemetry.batch import ReadingBatch  # noqa: E402
from wattwise.telemetry.validate import ReadingValidator  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
METRICS = ["power_w", "voltage_v", "current_a", "temperature_c", "cpu_frac"]
LINES: list[str] = []
NOTES = """## Goals and how to read these figures

- Goals from issue 5: >= 200 000 validated readings/s into DuckDB (batched), >= 50 000/s into
  PostgreSQL via COPY, latest-per-device at 10k devices p99 <= 50 ms.
- Every "batched" figure includes validation (NumPy, all checks of `ReadingValidator`) and the
  store's transaction: insert skipping duplicates by primary key, and the upsert of the
  `latest` table. The row-by-row baseline inserts the same rows one `INSERT` each.
- "per CPU-second" divides by the CPU time of the benchmark process (all its threads;
  PostgreSQL's own server CPU is not in it). It moves much less than wall-clock figures when
  other processes compete for the 2 cores, which they did during these runs (load average
  above, i.e. 2-6 runnable processes per core): the wall-clock figures are lower bounds, and
  the DuckDB per-CPU-second figure is the one that tells whether the code reaches the goal
  on an idle 2-core machine.
- Both stores take a fast path when a batch holds no already-stored reading: a plain
  `INSERT` (half the cost of `INSERT ... ON CONFLICT DO NOTHING`). A redelivered batch makes
  it fail on the primary key, it is rolled back and redone with `ON CONFLICT DO NOTHING`
  plus the join that counts duplicates per device.
- End-to-end latency is wall time from the publisher's clock reading (`t_s` = time of
  publish) to the end of the store commit, on the same host. Row-by-row ingest cannot sustain
  2 000 readings/s at all (see its rate in the first table), so it is compared at 100/s.
- `latest()` returns 10 000 `Reading` objects; building them costs more than the query.
  Vectorized consumers (decide/, the twin) should call `latest_batch()`, which returns columns.
"""


def out(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def make_batch(n: int, n_devices: int, t0_s: float, rng: np.random.Generator) -> ReadingBatch:
    devices = [f"srv-{i}" for i in range(n_devices)]
    idx = np.arange(n)
    dev = [devices[i % n_devices] for i in range(n)]
    met = [METRICS[(i // n_devices) % len(METRICS)] for i in range(n)]
    value = rng.uniform(0.1, 0.9, n) * np.where(np.array(met) == "power_w", 1000.0, 1.0)
    tags = [(("application", "web"), ("rack", f"r{i % 50}")) for i in range(n_devices)]
    t_s = t0_s + idx // (n_devices * len(METRICS)) * 1.0 + (idx % 997) * 1e-6
    return ReadingBatch.from_columns(dev, met, value, t_s, tags=[tags[i % n_devices] for i in range(n)])


def pg_database() -> tuple[str, Callable[[], None]]:
    name = f"ww_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


def ingest_throughput(
    store: DuckDBStore | PostgresStore, label: str, n: int, batch_rows: int, n_rows_baseline: int
) -> None:
    rng = np.random.default_rng(1)
    n_devices = 10_000
    now_s = WallClock().now_s()
    validator = ReadingValidator([f"srv-{i}" for i in range(n_devices)])
    batches = [make_batch(batch_rows, n_devices, now_s - 3600 + k * 10, rng) for k in range(n // batch_rows)]
    t_val = t_write = 0.0
    cpu0 = time.process_time()
    for b in batches:
        t0 = time.perf_counter()
        accepted = validator.validate(b, now_s).accepted
        t1 = time.perf_counter()
        res = store.write(accepted)
        t2 = time.perf_counter()
        assert res.inserted == len(b), (res.inserted, len(b))
        t_val += t1 - t0
        t_write += t2 - t1
    cpu_s = time.process_time() - cpu0
    batched = n / (t_val + t_write)
    base = make_batch(n_rows_baseline, n_devices, now_s - 7200, rng)
    t0 = time.perf_counter()
    store.write_rows(validator.validate(base, now_s).accepted)
    rows = n_rows_baseline / (time.perf_counter() - t0)
    out(
        f"| {label} | {n:,} in batches of {batch_rows:,} | {batched:,.0f} /s (validate {n / t_val:,.0f} /s, "
        f"write {n / t_write:,.0f} /s) | {n / cpu_s:,.0f} | {rows:,.0f} /s ({n_rows_baseline:,} rows) "
        f"| {batched / rows:,.0f}x |"
    )


def _timed(fn: Callable[[], object], runs: int) -> tuple[np.ndarray, object]:
    times, got = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        got = fn()
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1e3, got


def latest_latency(store: DuckDBStore | PostgresStore, label: str, runs: int) -> None:
    """p50/p99 of the newest power_w of 10k devices (history already loaded), vs a naive scan."""
    naive_sql = (
        "SELECT device_id, 'power_w', arg_max(value, t_s), max(t_s), 'good' FROM readings WHERE metric = 'power_w'"
        " GROUP BY device_id"
        if isinstance(store, DuckDBStore)
        else "SELECT DISTINCT ON (device_id) device_id, metric, value, t_s, quality FROM readings"
        " WHERE metric = 'power_w' ORDER BY device_id, t_s DESC"
    )

    def naive() -> ReadingBatch:  # same output as latest_batch(), from the raw readings
        run = store._run
        rows = (
            store._tx(lambda: run(naive_sql, ()))
            if isinstance(store, PostgresStore)
            else store._read(lambda: run(naive_sql, ()))
        )
        return sql.latest_columns(*zip(*rows, strict=True))

    cols, got = _timed(lambda: store.latest_batch(metrics=["power_w"]), runs)
    objs, _ = _timed(lambda: store.latest(metrics=["power_w"]), max(10, runs // 4))
    base, ref = _timed(naive, max(10, runs // 4))
    assert isinstance(got, ReadingBatch)
    assert isinstance(ref, ReadingBatch)
    assert len(got) == len(ref) == 10_000
    assert got.value.tolist() == ref.value.tolist()
    p = np.percentile
    out(
        f"| {label} | {store.count():,} rows | p50 {p(cols, 50):.1f} / p99 {p(cols, 99):.1f} ms "
        f"| p50 {p(objs, 50):.1f} / p99 {p(objs, 99):.1f} ms | p50 {p(base, 50):.1f} / p99 {p(base, 99):.1f} ms "
        f"| {p(base, 99) / p(cols, 99):,.1f}x |"
    )


class TimedSink:
    """Wraps a store: records, for each stored reading, wall time at commit minus its t_s."""

    def __init__(self, store: DuckDBStore, row_by_row: bool) -> None:
        self.store, self.row_by_row = store, row_by_row
        self.latencies_s: list[float] = []

    def write(self, batch: ReadingBatch) -> WriteResult:
        if self.row_by_row:
            self.store.write_rows(batch)
            res = WriteResult(len(batch))
        else:
            res = self.store.write(batch)
        done_s = time.time()
        self.latencies_s.extend((done_s - batch.t_s).tolist())
        return res


async def e2e_nats(tmp: Path, rate_per_s: int, seconds: float, row_by_row: bool) -> list[float]:
    import nats

    from wattwise.model.values import Reading
    from wattwise.telemetry.nats_ingest import NatsIngest, ensure_stream, publish_readings
    from wattwise.telemetry.pipeline import IngestPipeline

    port = free_port()
    js_dir = str(tmp / f"js{row_by_row}")
    proc = await asyncio.create_subprocess_exec(
        "nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", js_dir,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await asyncio.sleep(0.3)
        url = f"nats://127.0.0.1:{port}"
        devices = [f"srv-{i}" for i in range(100)]
        store = DuckDBStore(tmp / f"e2e-nats-{row_by_row}.duckdb")
        sink = TimedSink(store, row_by_row)
        pipeline = IngestPipeline(sink, ReadingValidator(devices), WallClock())
        stop = asyncio.Event()
        nc = await nats.connect(url)
        await ensure_stream(nc)
        task = asyncio.create_task(NatsIngest(pipeline, url, fetch_size=500, fetch_timeout_s=0.05).run(stop))
        await asyncio.sleep(0.5)
        per_msg = 10
        n_msgs = int(rate_per_s * seconds / per_msg)
        start = time.time()
        for i in range(n_msgs):
            now = time.time()
            await publish_readings(nc, "dc1", [Reading(devices[i % 100], "power_w", 100.0 + k, now + k * 1e-6)
                                                for k in range(per_msg)])  # fmt: skip
            await asyncio.sleep(max(0.0, start + (i + 1) * per_msg / rate_per_s - time.time()))
        await wait_until(lambda: len(sink.latencies_s) >= n_msgs * per_msg, 120)
        stop.set()
        await task
        await nc.close()
        store.close()
        return sink.latencies_s
    finally:
        proc.terminate()
        await proc.wait()


def e2e_mqtt(tmp: Path, rate_per_s: int, seconds: float, row_by_row: bool) -> list[float]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from wattwise.model.values import Reading
    from wattwise.telemetry.codec import encode_readings, mqtt_topic
    from wattwise.telemetry.mqtt_ingest import MqttIngest
    from wattwise.telemetry.pipeline import IngestPipeline

    port = free_port()
    conf = tmp / f"mosq{row_by_row}.conf"
    # max_queued_messages 0: while ingest applies back-pressure, the broker must queue, not drop
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        devices = [f"srv-{i}" for i in range(100)]
        store = DuckDBStore(tmp / f"e2e-mqtt-{row_by_row}.duckdb")
        sink = TimedSink(store, row_by_row)

        async def main() -> None:
            pipeline = IngestPipeline(sink, ReadingValidator(devices), WallClock())
            ingest = MqttIngest(pipeline, port=port, client_id="bench")
            ingest.start()
            await asyncio.to_thread(ingest.subscribed.wait, 5)
            stop = asyncio.Event()
            task = asyncio.create_task(pipeline.run(stop))
            source = asyncio.create_task(ingest.run(stop))
            per_msg = 10
            n_msgs = int(rate_per_s * seconds / per_msg)

            def publish() -> None:
                pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
                pub.connect("127.0.0.1", port)
                pub.loop_start()
                infos = []
                start = time.time()
                for i in range(n_msgs):
                    now = time.time()
                    rs = [Reading(devices[i % 100], "power_w", 100.0 + k, now + k * 1e-6) for k in range(per_msg)]
                    infos.append(pub.publish(mqtt_topic("dc1", rs[0].device_id), encode_readings(rs), qos=1))
                    time.sleep(max(0.0, start + (i + 1) * per_msg / rate_per_s - time.time()))
                for info in infos:  # paho sends from its own thread: wait before stopping it
                    info.wait_for_publish(30)
                pub.loop_stop()

            th = threading.Thread(target=publish)
            th.start()
            await wait_until(lambda: len(sink.latencies_s) >= n_msgs * per_msg, 120)
            th.join()
            stop.set()
            await task
            await source
            ingest.stop()

        asyncio.run(main())
        store.close()
        return sink.latencies_s
    finally:
        proc.terminate()
        proc.wait()


async def wait_until(cond: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while True:  # polling: the condition is filled by another thread
            if cond():
                return
            await asyncio.sleep(0.05)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes (CI smoke run)")
    args = ap.parse_args()
    scale = 0.2 if args.quick else 1.0
    tmp = Path(tempfile.mkdtemp(prefix="ww-bench-"))
    out("# Store and ingest benchmarks")
    out()
    out(f"Load average at start (2 cores): {os.getloadavg()[0]:.1f}.")
    out()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out(f"Machine: {machine}; run {when}; command `.venv/bin/python bench/store_ingest.py{' --quick' * args.quick}`.")
    out()
    out("## Validated ingest throughput (10k devices × 5 metrics, validation + store write)")
    out()
    out(
        "| backend | readings | batched, wall clock (validate + write) | batched, per CPU-second of this process "
        "| row-by-row baseline | ratio |"
    )
    out("|---|---|---|---|---|---|")
    duck = DuckDBStore(tmp / "bench.duckdb")
    ingest_throughput(duck, "DuckDB (file)", int(1_000_000 * scale), 50_000, 3_000)
    dsn, drop = pg_database()
    pg = PostgresStore(dsn)
    try:
        ingest_throughput(pg, "PostgreSQL 15 (COPY)", int(500_000 * scale), 50_000, 3_000)
        out()
        out("## Newest power reading of each of 10 000 devices")
        out()
        out(
            "| backend | history | `latest_batch()` columns (ours) | `latest()` as 10k `Reading`s "
            "| naive scan of readings (baseline, same columns) | p99 ratio baseline/ours |"
        )
        out("|---|---|---|---|---|---|")
        latest_latency(duck, "DuckDB", 200)
        latest_latency(pg, "PostgreSQL", 200)
    finally:
        pg.close()
        drop()
        duck.close()
    out()
    out("## End-to-end latency: publish → validated → committed (wall clock, same host)")
    out()
    out("| bus | load | batched commit p50 / p99 | row-by-row commit p50 / p99 (baseline) | p99 ratio |")
    out("|---|---|---|---|---|")
    secs = 5.0 * scale
    p = np.percentile
    buses: tuple[tuple[str, Callable[[int, bool], list[float]]], ...] = (
        ("NATS JetStream", lambda rate, rbr: asyncio.run(e2e_nats(tmp, rate, secs, rbr))),
        ("MQTT QoS 1", lambda rate, rbr: e2e_mqtt(tmp, rate, secs, rbr)),
    )
    for bus, fn in buses:
        # the same light load for both, so the row-by-row baseline can keep up at all
        fast, slow = np.array(fn(100, False)) * 1e3, np.array(fn(100, True)) * 1e3
        out(
            f"| {bus} | 100 readings/s for {secs:.0f} s (10/msg) | {p(fast, 50):.1f} / {p(fast, 99):.1f} ms | "
            f"{p(slow, 50):.1f} / {p(slow, 99):.1f} ms | {p(slow, 99) / p(fast, 99):.1f}x |"
        )
        for rate in (2000, 10000):
            fast = np.array(fn(rate, False)) * 1e3
            out(
                f"| {bus} | {rate} readings/s for {secs:.0f} s (10/msg) | {p(fast, 50):.1f} / {p(fast, 99):.1f} ms "
                "| cannot keep up (row-by-row rate above is lower than the load) | — |"
            )
    shutil.rmtree(tmp, ignore_errors=True)
    out()
    out(f"Load average at the end: {os.getloadavg()[0]:.1f}.")
    out()
    out(NOTES)
    report = Path(__file__).resolve().parent / "reports" / "store.md"
    if not args.quick:
        report.write_text("\n".join(LINES) + "\n")
        print(f"wrote {report}")


if __name__ == "__main__":
    main()
