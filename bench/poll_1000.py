"""Poll 1 000 emulated devices (NUT via real upsd, SNMP, Modbus, Redfish) on loopback in 1 s cycles.

Run: ``.venv/bin/python bench/poll_1000.py [--workers N]`` (writes bench/reports/poll.md).

A child process hosts the emulators (each backed by an in-memory Driver) and the real upsd
serves the NUT devices; ``--workers`` poller processes (2 by default, one per core) each run
the wattwise ``Poller`` over the real protocol clients for every N-th device, and this process
only tells them when to poll. Measured: cycle time (command to the last worker's answer;
p50/p99 over the measured cycles, period 1 s), failed polls by reason, CPU of every process
(workers, emulators, upsd), per-protocol CPU per poll, and a baseline measured in the same run:
the same devices polled one after the other (no concurrency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from wattwise.drivers.modbus import ModbusRackletDriver, RackletIds  # noqa: E402
from wattwise.drivers.nut import NutDriver  # noqa: E402
from wattwise.drivers.nut_client import NutEndpoint  # noqa: E402
from wattwise.drivers.poller import Poller  # noqa: E402
from wattwise.drivers.redfish import RedfishDriver  # noqa: E402
from wattwise.drivers.redfish_client import RedfishEndpoint  # noqa: E402
from wattwise.drivers.retry import RetryPolicy  # noqa: E402
from wattwise.drivers.snmp import SnmpPduDriver, SnmpTarget  # noqa: E402
from wattwise.model.clock import WallClock  # noqa: E402
from wattwise.sim.emulators.cache import CachedDriver  # noqa: E402
from wattwise.sim.emulators.memory import MemoryDriver  # noqa: E402
from wattwise.sim.emulators.modbus import ModbusRackletEmulator  # noqa: E402
from wattwise.sim.emulators.nut_socket import NutDeviceSpec, NutSocketEmulator  # noqa: E402
from wattwise.sim.emulators.redfish import RedfishEmulator  # noqa: E402
from wattwise.sim.emulators.redfish_resources import RedfishDeviceSpec  # noqa: E402
from wattwise.sim.emulators.snmp import SnmpPduAgent, SnmpPduSpec  # noqa: E402
from wattwise.sim.emulators.upsd import UpsdConfig, UpsdProcess  # noqa: E402

OUTLETS = 8
KINDS = ("nut", "snmp", "modbus", "redfish")


def _state(n_nut: int, n_snmp: int, n_modbus: int, n_redfish: int) -> MemoryDriver:
    s: dict[tuple[str, str], float] = {}
    for i in range(n_nut):
        s.update(
            {
                (f"ups{i}", "battery_charge_frac"): 0.97,
                (f"ups{i}", "output_power_w"): 4000.0 + i,
                (f"ups{i}", "battery_runtime_s"): 1800.0,
                (f"ups{i}", "load_frac"): 0.4,
            }
        )
    for i in range(n_snmp):
        s[(f"pdu{i}", "power_w")] = 2000.0 + i
        s.update({(f"pdu{i}/o{n}", "outlet_on"): 1.0 for n in range(1, OUTLETS + 1)})
        s.update({(f"pdu{i}/o{n}", "power_w"): 200.0 for n in range(1, OUTLETS + 1)})
    for i in range(n_modbus):
        s.update(
            {(f"rk{i}", "dc_voltage_v"): 48.0, (f"rk{i}", "output_power_w"): 3000.0, (f"rk{i}", "inlet_temp_c"): 24.0}
        )
        s.update({(f"rk{i}/psu{p}", "output_power_w"): 1000.0 for p in range(3)})
    for i in range(n_redfish):
        s.update({(f"srv{i}", "power_w"): 400.0, (f"srv{i}", "power_cap_w"): 800.0})
        s.update({(f"srv{i}/psu{p}", "output_power_w"): 200.0 for p in range(2)})
    return MemoryDriver(s)


async def serve(n_nut: int, n_snmp: int, n_modbus: int, n_redfish: int) -> None:
    """Child: start every emulator, print their ports as JSON, run until SIGTERM."""
    backend = CachedDriver(_state(n_nut, n_snmp, n_modbus, n_redfish), max_age_s=0.2)
    servers: list = []
    ports: dict[str, list[int]] = {"snmp": [], "modbus": [], "redfish": []}
    root = Path(tempfile.mkdtemp(prefix="wattwise-bench-"))
    upsd = UpsdProcess(UpsdConfig(root, _free_port(), sockets=[f"ups{i}" for i in range(n_nut)]))
    upsd.start_drivers()
    for i in range(n_nut):
        e = NutSocketEmulator(
            backend, NutDeviceSpec(f"ups{i}", f"ups{i}"), upsd.config.socket_path(f"ups{i}"), refresh_s=1.0
        )
        await e.start()
        servers.append(e)
    upsd.start_upsd()
    for i in range(n_snmp):
        a = SnmpPduAgent(
            backend, SnmpPduSpec(f"pdu{i}", tuple(f"pdu{i}/o{n}" for n in range(1, OUTLETS + 1)), 1, "bench")
        )
        await a.start()
        servers.append(a)
        ports["snmp"].append(a.port)
    for i in range(n_modbus):
        m = ModbusRackletEmulator(backend, RackletIds(f"rk{i}", tuple(f"rk{i}/psu{p}" for p in range(3)), f"rk{i}"))
        await m.start()
        servers.append(m)
        ports["modbus"].append(m.port)
    for i in range(n_redfish):
        r = RedfishEmulator(backend, RedfishDeviceSpec(f"srv{i}", "server", psu_ids=(f"srv{i}/psu0", f"srv{i}/psu1")))
        await r.start()
        servers.append(r)
        ports["redfish"].append(r.server.port)
    await upsd.wait_ready([f"ups{i}" for i in range(n_nut)], timeout_s=30.0)
    print(json.dumps({"nut": upsd.config.port, "upsd_pid": upsd.upsd_pid, **ports}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    upsd.stop()
    for s in servers:
        await s.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    """utime + stime of a process, s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def build_drivers(info: dict, n_nut: int, worker: int = 0, workers: int = 1) -> list:
    """This worker's share of the devices: every ``workers``-th one, so each worker gets a protocol mix."""
    retry = RetryPolicy(timeout_s=2.0, attempts=1)
    from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

    engine = SnmpEngine()
    specs: list = [
        lambda i=i: NutDriver(f"ups{i}", f"ups{i}", NutEndpoint(port=info["nut"]), retry=retry) for i in range(n_nut)
    ]
    specs += [
        lambda i=i, p=p: SnmpPduDriver(f"pdu{i}", SnmpTarget(port=p, community="bench"), retry=retry, engine=engine)
        for i, p in enumerate(info["snmp"])
    ]
    specs += [
        lambda i=i, p=p: ModbusRackletDriver(
            RackletIds(f"rk{i}", tuple(f"rk{i}/psu{q}" for q in range(3)), f"rk{i}"), port=p, retry=retry
        )
        for i, p in enumerate(info["modbus"])
    ]
    specs += [
        lambda i=i, p=p: RedfishDriver(
            f"srv{i}", RedfishEndpoint(f"http://127.0.0.1:{p}", "admin", "secret"), retry=retry
        )
        for i, p in enumerate(info["redfish"])
    ]
    return [make() for i, make in enumerate(specs) if i % workers == worker]


def _cycle_result(results: list, took: float) -> dict:
    durations: dict[str, list[float]] = {}
    errors: Counter[str] = Counter()
    for r in results:
        kind = r.name.split(":")[0]
        durations.setdefault(kind, []).append(r.duration_s)
        if not r.ok:
            errors[f"{kind}: {r.error.split(' (device=')[0]}"] += 1
    return {
        "took": took,
        "failed": sum(not r.ok for r in results),
        "readings": sum(r.count for r in results),
        "durations": durations,
        "errors": dict(errors),
    }


async def protocol_cost(drivers: list, kind: str) -> dict[str, float]:
    """Poller CPU of one protocol: its devices polled alone, 3 unhurried cycles."""
    group = [d for d in drivers if d.name.startswith(f"{kind}:")]
    poller = Poller([(d, 1.0) for d in group], WallClock(), timeout_s=30.0, max_concurrency=max(1, len(group)))
    c0, w0 = time.process_time(), time.perf_counter()
    results = [r for _ in range(3) for r in await poller.poll_all()]
    return {
        "poller_cpu_s": time.process_time() - c0,
        "polls": len(results),
        "wall_s": (time.perf_counter() - w0) / 3,
        "devices": len(group),
        "failed": sum(not r.ok for r in results),
    }


async def work(args: argparse.Namespace) -> None:
    """Worker: poll this worker's share of the devices on command (JSON lines on stdin/stdout)."""
    info = json.loads(args.info)
    drivers = build_drivers(info, args.nut, args.worker, args.workers)
    # Every poll of a cycle in flight at once, as Poller.run's coordinators are.
    poller = Poller(
        [(d, args.period) for d in drivers], WallClock(), timeout_s=args.period, max_concurrency=len(drivers)
    )
    warm = Poller([(d, args.period) for d in drivers], WallClock(), timeout_s=30.0, max_concurrency=64)
    for _ in range(2):  # warm-up, unhurried: connections, Redfish discovery, SNMP counts
        await warm.poll_all()
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": len(drivers)}), flush=True)
    while (command := (await reader.readline()).decode().strip()) not in ("", "quit"):
        if command.startswith("cost "):
            reply: dict = await protocol_cost(drivers, command.split()[1])
        elif command == "sequential":
            t0 = time.perf_counter()
            for c in poller.coordinators:
                await c.poll_once()
            reply = {"took": time.perf_counter() - t0}
        else:
            t0 = time.perf_counter()
            results = await poller.poll_all()
            reply = _cycle_result(results, time.perf_counter() - t0)
        print(json.dumps(reply), flush=True)
    for d in drivers:
        await d.close()


class Workers:
    """The poller worker processes, driven by JSON-line commands."""

    def __init__(self, info: dict, args: argparse.Namespace) -> None:
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    str(k),
                    "--workers",
                    str(args.workers),
                    "--info",
                    json.dumps(info),
                ]
                + [f"--nut={args.nut}", f"--period={args.period}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for k in range(args.workers)
        ]
        self.devices = sum(json.loads(self._line(p))["ready"] for p in self.procs)

    @staticmethod
    def _line(proc: subprocess.Popen) -> str:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"poller worker {proc.pid} exited")
        return line

    def ask(self, command: str, procs: list | None = None) -> list[dict]:
        """Send ``command`` to the workers at once; their replies."""
        procs = self.procs if procs is None else procs
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(command + "\n")
            p.stdin.flush()
        return [json.loads(self._line(p)) for p in procs]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None and p.stdin is not None:
                p.stdin.write("quit\n")
                p.stdin.flush()
        for p in self.procs:
            p.wait(timeout=30)


def _p99(values: list[float]) -> float:
    """Inclusive p99: never beyond the observed max."""
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]


def measure(info: dict, args: argparse.Namespace, child_pid: int) -> dict:
    workers = Workers(info, args)
    try:
        return _measure(workers, info, args, child_pid)
    finally:
        workers.stop()


def _measure(workers: Workers, info: dict, args: argparse.Namespace, child_pid: int) -> dict:
    costs: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        agg = costs[kind] = dict.fromkeys(
            ("poller_cpu_s", "emulator_cpu_s", "polls", "wall_s", "devices", "failed"), 0.0
        )
        for proc in workers.procs:  # one worker at a time: the emulators' CPU is then this protocol's
            e0 = cpu_s(child_pid)
            (c,) = workers.ask(f"cost {kind}", [proc])
            agg["emulator_cpu_s"] += cpu_s(child_pid) - e0
            for key in ("poller_cpu_s", "polls", "wall_s", "devices", "failed"):
                agg[key] += c[key]
        if not agg["polls"]:
            del costs[kind]
    sequential_s = sum(r["took"] for p in workers.procs for r in workers.ask("sequential", [p]))
    pids = {"poller": [p.pid for p in workers.procs], "emulators": [child_pid], "upsd": [info["upsd_pid"]]}
    cpu0 = {k: sum(cpu_s(p) for p in ps) for k, ps in pids.items()}
    load0 = os.getloadavg()[0]
    wall0 = time.perf_counter()
    cycles, failed, readings = [], 0, 0
    errors: Counter[str] = Counter()
    durations: dict[str, list[float]] = {}
    for _ in range(args.cycles):
        start = time.perf_counter()
        replies = workers.ask("cycle")
        took = time.perf_counter() - start
        cycles.append(took)
        failed += sum(r["failed"] for r in replies)
        readings = max(readings, sum(r["readings"] for r in replies))
        for r in replies:
            errors.update(r["errors"])
            for kind, v in r["durations"].items():
                durations.setdefault(kind, []).extend(v)
        time.sleep(max(0.0, args.period - took))
    wall = time.perf_counter() - wall0
    used = {k: sum(cpu_s(p) for p in ps) - cpu0[k] for k, ps in pids.items()}
    return {
        "devices": workers.devices,
        "workers": args.workers,
        "cycles": len(cycles),
        "p50_s": statistics.median(cycles),
        "p99_s": _p99(cycles),
        "max_s": max(cycles),
        "failed_polls": failed,
        "failure_reasons": dict(errors.most_common()),
        "sequential_s": sequential_s,
        "cpu_frac": {k: v / wall for k, v in used.items()},
        "readings_per_cycle": readings,
        "cpu_s_per_cycle": {k: v / len(cycles) for k, v in used.items()},
        "load_avg": (load0 + os.getloadavg()[0]) / 2,
        "per_kind_p50_s": {k: statistics.median(v) for k, v in durations.items()},
        "per_kind_p99_s": {k: _p99(v) for k, v in durations.items()},
        "cycles_s": cycles,
        "costs": costs,
    }


DESIGN_NOTES = """## How the cycle is made to fit

- **Redfish**: the driver walks from the service root once and keeps the resources that hold
  readings (a 404 or any failed poll drops that plan; the next poll walks again). A poll GETs
  only those, and a collection's members in one `GET <collection>?$expand=.($levels=n)` when
  the service root advertises `ProtocolFeaturesSupported.ExpandQuery` (the emulator serves
  DMTF `$expand`): a BMC here costs 2 GETs per poll (EnvironmentMetrics, PowerSupplies with
  their Metrics), and the Controls collection every 10th poll, instead of 3 to 8. GET requests
  are built once per path and session. Most of what remains is httpx/httpcore per request.
- **SNMP**: one GET PDU per poll (power, phase loads, outlet states and loads: 18 varbinds),
  built once per PDU with the engine's target configured once; only the request-id changes.
  What remains is pysnmp's pyasn1 encoding and decoding (about 80 % of the poller's SNMP
  time). The agents spread over 16 UDP sockets of the engine: asyncio reads one datagram per
  socket per loop turn. Failed polls before these changes: in diagnostic runs every failed
  poll was an SNMP poll past its 1 s deadline (`no answer within 1.0 s`): the one poller loop
  was saturated (1.4 CPU-s of work per 1 s cycle), and the answers of 250 agents came through
  one shared UDP socket, one per loop turn, so they waited longest; some overflowed its
  receive buffer and were lost (the kernel's UDP `RcvbufErrors` rose by ~500 in 6 cycles).
  The emulated agents decode
  and encode with a small BER codec (wattwise.sim.emulators.snmp_ber) instead of pyasn1:
  1.9 → about 0.3 ms of emulator CPU per poll.
- **Poller**: one task per device poll and `asyncio.timeout` for its deadline (no second task);
  all polls of a cycle in flight at once (a limit of 512 made the second half of the devices
  wait for the first).
- **Poller worker processes ({workers} here)**: a poller's cycle is one asyncio loop on one core. The
  devices are split over N worker processes (one device in N each, so each gets the protocol
  mix), each with its own `Poller`, drivers, pysnmp engine and connections; nothing is shared
  between them and a worker's readings would go to the same sink as before. The CPU figures
  above are the sum over all workers. With 2 workers on 2 cores, each needs about half of the
  poller CPU per cycle, and the emulators' and upsd's CPU comes on top on the same cores.
"""


def report(res: dict, args: argparse.Namespace) -> str:
    cpu, per_cycle = res["cpu_frac"], res["cpu_s_per_cycle"]
    total_s = sum(per_cycle.values())
    n = res["workers"]
    lines = [
        f"# Poller benchmark: {res['devices']} emulated devices on loopback",
        "",
        f"Command: `.venv/bin/python bench/poll_1000.py {' '.join(sys.argv[1:])}`".replace(
            f" --out {REPO}/", " --out "
        ),
        "",
        f"Machine: {os.cpu_count()} cores, 1-min load average {res['load_avg']:.1f} during the measurement "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). The machine is shared with other work: when the "
        "load average exceeds the core count, wall-clock figures include waiting for a CPU; the CPU-seconds per "
        "cycle are the contention-free cost.",
        "",
        f"Devices: {args.nut} NUT UPSes behind the real upsd (wattwise socket drivers), {args.snmp} SNMP APC rPDUs "
        f"({OUTLETS} outlets each, wattwise agent), {args.modbus} Modbus racklets (power + cooling units, pymodbus "
        f"server), {args.redfish} Redfish BMCs (chassis, 2 PSUs with metrics, 3 controls; wattwise emulator). "
        f"Emulators run in one child process, upsd in its own; the devices are polled by {n} poller worker "
        f"process{'es' if n > 1 else ''} (one device in {n} each, so each polls the protocol mix; one asyncio loop "
        "and one `Poller` per worker, every poll of a cycle in flight at once as `Poller.run`'s coordinators are). "
        f"Period {args.period} s, deadline of a poll = the period, {res['cycles']} measured cycles after 2 "
        "warm-up cycles. A cycle is timed from the command to the workers until the last worker's poll ends.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| devices polled per cycle | {res['devices']} ({res['readings_per_cycle']} readings) |",
        f"| cycle time p50 | {res['p50_s'] * 1000:.0f} ms |",
        f"| cycle time p99 | {res['p99_s'] * 1000:.0f} ms |",
        f"| cycle time max | {res['max_s'] * 1000:.0f} ms |",
        f"| failed polls (all cycles) | {res['failed_polls']} |",
        f"| **baseline**: same devices polled one after the other | {res['sequential_s'] * 1000:.0f} ms |",
        f"| CPU, poller worker{'s' if n > 1 else ''} (all) | {cpu['poller'] * 100:.0f} % of one core |",
        f"| CPU, emulator process | {cpu['emulators'] * 100:.0f} % of one core |",
        f"| CPU, upsd | {cpu['upsd'] * 100:.1f} % of one core |",
        f"| CPU-seconds per cycle: poller workers / emulators / upsd | {per_cycle['poller']:.2f} / "
        f"{per_cycle['emulators']:.2f} / {per_cycle['upsd']:.3f} s |",
        f"| **CPU-seconds per cycle, all processes** | {total_s:.2f} s (of {os.cpu_count()} available per second) |",
        f"| poller CPU per device poll | {per_cycle['poller'] / res['devices'] * 1e3:.2f} ms |",
        "",
        "Time of one device's poll inside a concurrent cycle, by protocol (includes waiting for the loop):",
        "",
        "| protocol | p50 | p99 |",
        "|---|---|---|",
    ]
    lines += [
        f"| {k} | {v * 1000:.0f} ms | {res['per_kind_p99_s'][k] * 1000:.0f} ms |"
        for k, v in sorted(res["per_kind_p50_s"].items())
    ]
    reasons = res["failure_reasons"]
    lines += ["", "Failed polls by reason (all cycles):" if reasons else "No poll failed.", ""]
    if reasons:
        lines += ["| protocol: reason | polls |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in reasons.items()]
        lines.append("")
    lines += [
        "CPU cost of one device poll, by protocol (each protocol's devices polled alone, one worker at a time, "
        "3 cycles, no deadline; CPU time is not inflated by waiting for a core):",
        "",
        "| protocol | devices | poller CPU / poll | emulator CPU / poll | wall per cycle | failed |",
        "|---|---|---|---|---|---|",
    ]
    total_poller = total_emulator = 0.0
    for k, c in res["costs"].items():
        lines.append(
            f"| {k} | {c['devices']:.0f} | {c['poller_cpu_s'] / c['polls'] * 1e3:.2f} ms | "
            f"{c['emulator_cpu_s'] / c['polls'] * 1e3:.2f} ms | {c['wall_s'] * 1000:.0f} ms | {c['failed']:.0f} |"
        )
        total_poller += c["poller_cpu_s"] / 3
        total_emulator += c["emulator_cpu_s"] / 3
    lines += [
        "",
        f"From these costs one cycle of this mix needs {total_poller:.2f} CPU-s in the poller workers and "
        f"{total_emulator:.2f} CPU-s in the emulators; measured in the concurrent cycles: "
        f"{per_cycle['poller']:.2f} and {per_cycle['emulators']:.2f}.",
    ]
    lines += ["", *DESIGN_NOTES.format(workers=n).splitlines()]
    verdict = "within" if res["p99_s"] <= args.period else "NOT within"
    contended = res["load_avg"] > (os.cpu_count() or 1) and res["p99_s"] > args.period
    lines += [
        "",
        f"Verdict: p99 cycle {res['p99_s'] * 1000:.0f} ms is {verdict} the {args.period * 1000:.0f} ms period"
        + (
            f" (load average {res['load_avg']:.1f} on {os.cpu_count()} cores: polls waited for a CPU; the cost of a "
            f"cycle, {total_s:.2f} CPU-s, is what a quiet machine would have to give)."
            if contended
            else "."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nut", type=int, default=250)
    parser.add_argument("--snmp", type=int, default=250)
    parser.add_argument("--modbus", type=int, default=250)
    parser.add_argument("--redfish", type=int, default=250)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2, help="poller worker processes")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("--info", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "reports" / "poll.md")
    args = parser.parse_args()
    # Transitions of 1 000 devices would drown the figures; the report counts failed polls.
    logging.getLogger("wattwise").setLevel(logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    if args.serve:
        asyncio.run(serve(args.nut, args.snmp, args.modbus, args.redfish))
        return
    if args.worker >= 0:
        asyncio.run(work(args))
        return
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            f"--nut={args.nut}",
            f"--snmp={args.snmp}",
            f"--modbus={args.modbus}",
            f"--redfish={args.redfish}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        info = json.loads(child.stdout.readline())
        res = measure(info, args, child.pid)
    finally:
        child.terminate()
        child.wait(timeout=30)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    text = report(res, args)
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
