"""Is a site pollable over the wire at the demo's poll period? (``wattwise demo --wire`` feasibility)

Run: ``.venv/bin/python bench/demo_wire.py [--site examples/two-hall-site.yaml] [--cycles 5]``.

A child ``wattwise sim serve SITE`` serves the twin behind real upsd, SNMP, Redfish and Modbus
endpoints; this process builds the drivers from the endpoints file it writes (as ``wattwise
run`` does) and polls every device once per cycle, all at once, under the Poller's bounded
concurrency. Measured: start-up of the endpoints, cycle wall time (p50/max), CPU seconds per
cycle of this process (the clients) and of the serving process (emulators; its upsd is a
third process, not counted). Baseline in the same run: one in-process ``TwinDriver.read()``
of the same site, which is what ``wattwise demo`` polls by default.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from wattwise.drivers.endpoint_drivers import build_drivers  # noqa: E402
from wattwise.drivers.endpoint_rules import load_endpoints  # noqa: E402
from wattwise.drivers.poller import Poller  # noqa: E402
from wattwise.model.clock import WallClock  # noqa: E402
from wattwise.model.loader import load_site  # noqa: E402
from wattwise.sim.driver import TwinDriver  # noqa: E402
from wattwise.sim.twin import Twin  # noqa: E402

WATTWISE = str(Path(sys.executable).parent / "wattwise")
TICK_S = os.sysconf("SC_CLK_TCK")


def child_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK_S


async def twin_baseline(site_path: Path, reads: int = 5) -> tuple[float, float]:
    """Median wall and CPU seconds of one in-process read of the whole twin."""
    site = load_site(site_path)
    twin = Twin(site, seed=0, start_s=time.time(), record_timeline=False)
    driver = TwinDriver(twin, clock=WallClock())
    walls, cpus = [], []
    for _ in range(reads):
        w0, c0 = time.perf_counter(), time.process_time()
        await driver.read()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        await asyncio.sleep(1.0)
    return statistics.median(walls), statistics.median(cpus)


async def wire(site_path: Path, endpoints: Path, cycles: int, serve_pid: int) -> dict[str, float]:
    """Poll every endpoint ``cycles`` times; cycle wall time and CPU of both processes."""
    site = load_site(site_path)
    built = build_drivers(load_endpoints(endpoints, site), site)
    poller = Poller([(d, 2.0) for d in built.drivers], WallClock(), timeout_s=10.0)
    walls, failed = [], 0
    try:
        await poller.poll_all()  # first contact: Redfish discovery, logins, connections
        c0, s0 = time.process_time(), child_cpu_s(serve_pid)
        for _ in range(cycles):
            w0 = time.perf_counter()
            results = await poller.poll_all()
            walls.append(time.perf_counter() - w0)
            failed += sum(1 for r in results if not r.ok)
        cpu_s, serve_cpu_s = time.process_time() - c0, child_cpu_s(serve_pid) - s0
    finally:
        await built.close()
    return {
        "drivers": len(built.drivers),
        "p50_s": statistics.median(walls),
        "max_s": max(walls),
        "client_cpu_s": cpu_s / cycles,
        "serve_cpu_s": serve_cpu_s / cycles,
        "failed": failed,
    }


def main() -> None:
    """Measure and print."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--site", type=Path, default=REPO / "examples" / "two-hall-site.yaml")
    ap.add_argument("--cycles", type=int, default=5)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="wattwise-demo-wire-"))
    endpoints = folder / "endpoints.yaml"
    t0 = time.perf_counter()
    serve = subprocess.Popen(
        [WATTWISE, "sim", "serve", str(args.site), "--endpoints-out", str(endpoints)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not endpoints.exists():
            if serve.poll() is not None:
                raise SystemExit("sim serve exited")
            time.sleep(0.5)
        start_s = time.perf_counter() - t0
        load = os.getloadavg()[0]
        result = asyncio.run(wire(args.site, endpoints, args.cycles, serve.pid))
        base_wall_s, base_cpu_s = asyncio.run(twin_baseline(args.site))
    finally:
        os.kill(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
    print(f"site {args.site.name}: {result['drivers']:.0f} drivers; endpoints up in {start_s:.1f} s; load {load:.1f}")
    print(
        f"over the wire: cycle p50 {result['p50_s']:.2f} s, max {result['max_s']:.2f} s; "
        f"CPU per cycle: clients {result['client_cpu_s']:.2f} s, emulators {result['serve_cpu_s']:.2f} s; "
        f"failed polls {result['failed']:.0f} in {args.cycles} cycles"
    )
    print(f"baseline (in-process TwinDriver.read): {base_wall_s * 1000:.0f} ms wall, {base_cpu_s * 1000:.0f} ms CPU")
    print(f"demo poll period 2.0 s: {'fits' if result['max_s'] < 2.0 else 'does not fit'} over the wire")


if __name__ == "__main__":
    main()
