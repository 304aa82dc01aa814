"""Event → every action acknowledged, over real protocols on loopback, on the wall clock.

Run: ``.venv/bin/python bench/event_ack.py`` (2 000-server example and a 10k-server generated
site; writes bench/reports/event_ack.md and .json). ``--quick``: a 40-server site, 3 trials.

Two processes, as on the floor:

* The device process (``bench/event_ack_devices.py``, one per trial): the twin of the site on
  the wall clock, its devices served on 127.0.0.1 over real protocols (UPS and ATS through the
  real ``upsd``, PDUs as SNMP agents, racklets as Modbus TCP units and, where
  ``--wire-servers``, every server as a Redfish BMC), and a JSON-over-HTTP stand-in for the
  orchestrator (service sheds, restores and throttles, feed metering; server readings and caps
  when servers are not on the wire). It writes an endpoints file.
* This process, the controller: drivers built from that endpoints file by the production
  loader (as ``wattwise run --endpoints`` does), polled by their coordinators (``PolledDriver``,
  each device at its own period and phase), the production assembly (``assemble``, armed,
  DuckDB journal) on a ``WallClock``, woken when a polled batch changes an event metric.

Each trial runs on a fresh rig (twin seed ``--seed`` + trial number): warm up, wait a random
fraction of a tick (seeded), cut both utility feeds (the generators are held failed, so the UPSes
go on battery and the allocation must shed), wait until the controller has been quiet for
``--quiet-s`` with every sent command answered, then bring the feeds back and let the controller
restore (counted, capped at ``--max-restore-s``, not part of the latency). UPS batteries are
sized to ``--runtime-s`` of the site's own load, so that a battery-only outage needs sheds (the
example's batteries would carry it for an hour, and the controller would rightly do nothing).

Latency of a trial (the headline) = last acknowledgement of any command of the decisions the
event triggered − injection: the outage's own decision and those of the events it sets off
within the window (a UPS going on battery a moment later). Split: injection → detection,
detection → decision (plan returned), the first decision's commands acked. Everything sent
until the controller is quiet, routine (periodic) re-plans on newer readings included, is
reported beside it. Baseline, same run: the same trials with the fast path off (events do not
decide at once; the next periodic decision, every ``decide_period_s``, does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from wattwise.act.base import Mode, Phase  # noqa: E402
from wattwise.control.assemble import Assembly, assemble, default_policies, tune_gc_for_controller  # noqa: E402
from wattwise.control.eventloop import new_event_loop  # noqa: E402
from wattwise.control.loop import LatestValues, TickReport, detect_event  # noqa: E402
from wattwise.decide.allocation import MilpAllocationPolicy  # noqa: E402
from wattwise.drivers.base import Driver  # noqa: E402
from wattwise.drivers.endpoint_drivers import BuiltDrivers, build_drivers  # noqa: E402
from wattwise.drivers.endpoint_rules import load_endpoints  # noqa: E402
from wattwise.drivers.polled import PolledDriver  # noqa: E402
from wattwise.errors import DeviceUnavailable  # noqa: E402
from wattwise.model.clock import WallClock  # noqa: E402
from wattwise.model.generate import SiteSpec, generate_site  # noqa: E402
from wattwise.model.loader import dump_site, load_site  # noqa: E402
from wattwise.model.site import Site  # noqa: E402
from wattwise.model.values import Action, ActionKind, ActionResult, Reading  # noqa: E402
from wattwise.sim.twin import Twin  # noqa: E402
from wattwise.store.duckdb_store import DuckDBStore  # noqa: E402

ORCHESTRATED = frozenset({ActionKind.SERVICE_SHED, ActionKind.SERVICE_RESTORE, ActionKind.THROTTLE})
IN_PROCESS_KINDS = frozenset({ActionKind.POWER_CAP, ActionKind.PSU_SETPOINT})
"""What the stand-in applies to servers and their PSUs when they are not on the wire (10k)."""
UTILITIES = ("utility-a", "utility-b")
GENERATORS = ("generator-a", "generator-b")
ANSWERED = {Phase.ACKED, Phase.FAILED}


# ---- the orchestrator stand-in's client, over HTTP on loopback ---------------------------------
class HttpOrchestratorDriver:
    """Client of the stand-in: services and feed metering read, sheds/restores/throttles applied.

    When servers are not on the wire it also carries their readings, power caps and PSU
    set-points (``in_process``), like a BMC aggregator's JSON API would.
    """

    def __init__(
        self, client: httpx.AsyncClient, kinds: frozenset[ActionKind], name: str = "orchestrator", prefix: str = ""
    ) -> None:
        self.name = name
        self.client = client
        self.kinds = kinds
        self.read_path, self.apply_path = (f"{prefix}", f"{prefix}/apply") if prefix else ("/readings", "/apply")

    def supports(self, kind: ActionKind) -> bool:
        return kind in self.kinds

    async def read(self) -> list[Reading]:
        try:
            rows = (await self.client.get(self.read_path)).json()
        except httpx.HTTPError as err:  # as the production drivers do: the poll fails, the loop goes on
            raise DeviceUnavailable(f"GET {self.read_path}: {type(err).__name__} {err}", device_id=self.name) from err
        return [Reading(d, m, float(v), float(t)) for d, m, v, t in rows]

    async def apply(self, action: Action) -> ActionResult:
        try:
            resp = await self.client.post(self.apply_path, content=action.model_dump_json())
        except httpx.HTTPError as err:
            raise DeviceUnavailable(f"POST {self.apply_path}: {type(err).__name__} {err}", device_id=self.name) from err
        return ActionResult.model_validate(resp.json())

    async def close(self) -> None:
        await self.client.aclose()


# ---- sites -------------------------------------------------------------------------------------
def base_site(name: str) -> Site:
    if name == "example":
        return load_site(REPO / "examples" / "two-hall-site.yaml")
    if name == "10k":
        return generate_site(SiteSpec(servers=10_000, seed=0))
    return generate_site(SiteSpec(servers=40, servers_per_rack=10, racks_per_hall=4, racklet_racks_per_hall=0, seed=6))


def sized_batteries(site: Site, runtime_s: float) -> Site:
    """UPS batteries holding ``runtime_s`` of each UPS's own load at the start (so an outage needs sheds)."""
    twin = Twin(site, seed=0, record_timeline=False)
    out_w = {r.device_id: r.value for r in twin.readings(kinds=("ups",)) if r.metric == "output_power_w"}
    ups = tuple(u.model_copy(update={"battery_wh": max(out_w[u.id], 1000.0) * runtime_s / 3600.0}) for u in site.ups)
    return site.model_copy(update={"ups": ups})


# ---- probes ------------------------------------------------------------------------------------
@dataclass
class Probes:
    """Wall times of detections, decisions and ticks (appended by the controller's hooks)."""

    detections: list[tuple[float, str]] = field(default_factory=list)
    decisions: list[tuple[float, float, str | None]] = field(default_factory=list)
    ticks: list[tuple[float, float, str | None, list[str]]] = field(default_factory=list)
    fast_path: bool = True

    def detector(self, before: LatestValues, after: LatestValues, expected: Collection[str]) -> str | None:
        event = detect_event(before, after, expected)
        if event is not None:
            self.detections.append((time.time(), event))
        return event if self.fast_path else None

    def busy(self) -> bool:
        """Whether a decision is in progress (planned, not yet through the actuator)."""
        return bool(self.decisions) and (not self.ticks or self.decisions[-1][0] > self.ticks[-1][1])

    def tick(self, report: TickReport) -> None:
        sent = [v.action.command_id for v in report.verdicts if v.phase in ANSWERED]
        self.ticks.append((report.t_s, time.time(), report.event, sent))


class TimedPlanner:
    """The assembly's planner, with the wall time each plan started and returned."""

    def __init__(self, inner: Any, probes: Probes) -> None:
        self.inner = inner
        self.probes = probes

    def __getattr__(self, name: str) -> Any:  # the rest of the planner's interface, unchanged
        return getattr(self.inner, name)

    def plan(self, latest: LatestValues, now_s: float, event: str | None) -> Any:
        t0 = time.time()
        out = self.inner.plan(latest, now_s, event)
        self.probes.decisions.append((t0, time.time(), event))
        return out


# ---- the rig -----------------------------------------------------------------------------------
@dataclass
class Rig:
    site: Site
    devices: subprocess.Popen[bytes]
    control: httpx.AsyncClient
    built: BuiltDrivers
    orchestrator: HttpOrchestratorDriver
    polled: PolledDriver
    assembly: Assembly
    probes: Probes
    served: dict[str, int]
    in_process: list[str]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    aggregator: HttpOrchestratorDriver | None = None

    async def inject(self, evs: list[dict[str, Any]]) -> None:
        """Events into the twin, now (in the device process)."""
        # At 10k on a slow host the device process once took over 10 s to take the request; the
        # trial's clock starts before it is sent, so such a stall counts against the response.
        (await self.control.post("/events", content=json.dumps(evs), timeout=60.0)).raise_for_status()

    async def status(self) -> dict[str, Any]:
        """Whether any service is still shed, and the device process's CPU seconds."""
        # At 10k the device process can be busy for seconds (a bulk poll's 290 000 readings).
        return dict((await self.control.get("/status", timeout=60.0)).json())

    async def stop(self) -> None:
        self.assembly.controller.stop()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.polled.close()
        await self.built.close()
        await self.orchestrator.close()
        if self.aggregator is not None:
            await self.aggregator.close()
        await self.control.aclose()
        stop_devices(self.devices)


def stop_devices(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the device process by its PID (it stops upsd by its own); after 20 s, SIGKILL its
    whole process group (its own session), so a device process too busy to stop leaves no upsd."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20.0)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_devices(
    site: Site, args: argparse.Namespace, wire_servers: bool, seed: int, folder: Path
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start bench/event_ack_devices.py for ``site``; its ready.json once it serves (blocking)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "site.yaml").write_text(dump_site(site), encoding="utf-8")
    periods = {
        "nut": args.ups_poll_s,
        "snmp": args.pdu_poll_s,
        "modbus": args.ups_poll_s,
        "redfish": args.server_poll_s,
    }
    cmd = [sys.executable, str(REPO / "bench" / "event_ack_devices.py"), "--site", str(folder / "site.yaml")]
    cmd += ["--seed", str(seed), "--out", str(folder), "--boot-s", str(args.boot_s)]
    refresh_s = args.refresh_s if len(site.servers) <= 2000 else args.refresh_10k_s
    cmd += ["--refresh-s", str(refresh_s), "--periods", json.dumps(periods)]
    cmd += ["--wire-servers" if wire_servers else "--no-wire-servers", "--loop", args.loop]
    with (folder / "devices.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ready = folder / "ready.json"
    t0 = time.monotonic()
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() - t0 > 300.0:
            stop_devices(proc)
            tail = (folder / "devices.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the device process did not start (rc {proc.returncode}):\n{tail}")
        time.sleep(0.1)
    return proc, json.loads(ready.read_text())


async def build_rig(site: Site, args: argparse.Namespace, wire_servers: bool, seed: int, folder: Path) -> Rig:
    proc, ready = await asyncio.to_thread(start_devices, site, args, wire_servers, seed, folder)
    loaded = load_endpoints(Path(ready["endpoints"]), site)
    built = build_drivers(loaded, site)
    control = httpx.AsyncClient(base_url=f"http://127.0.0.1:{ready['port']}", timeout=10.0)
    base = f"http://127.0.0.1:{ready['port']}"
    orchestrator = HttpOrchestratorDriver(httpx.AsyncClient(base_url=base, timeout=5.0), ORCHESTRATED)
    members: list[tuple[Driver, float]] = [*built.polled, (orchestrator, args.ups_poll_s)]
    aggregator: HttpOrchestratorDriver | None = None
    if not wire_servers:  # servers' readings and caps through the stand-in, at the servers' period
        # 290 000 readings a poll at 10k: a device process still warming up took over 5 s once.
        client = httpx.AsyncClient(base_url=base, timeout=30.0)
        aggregator = HttpOrchestratorDriver(client, IN_PROCESS_KINDS, name="bmc-aggregator", prefix="/servers")
        members.append((aggregator, args.server_poll_s))
    in_process = [] if wire_servers else ["server and PSU readings, power caps and PSU set-points (JSON stand-in)"]

    def route(action: Action) -> Driver | None:
        if action.kind in ORCHESTRATED:
            return orchestrator
        if aggregator is not None and action.kind in IN_PROCESS_KINDS and action.target_id not in built.routes:
            return aggregator
        return built.route(action)

    polled = PolledDriver(members, WallClock(), route, name="endpoints")
    policies = default_policies() if args.policies == "default" else [MilpAllocationPolicy(time_limit_s=0.5)]
    if args.restore_stagger_s is not None:  # restores between trials need not take the policy's 5 s steps
        policies = [
            MilpAllocationPolicy(time_limit_s=0.5, restore_stagger_s=args.restore_stagger_s)
            if p.name == "milp_allocation"
            else p
            for p in policies
        ]
    assembly = assemble(
        site,
        [polled],
        DuckDBStore(":memory:"),
        WallClock(),
        Mode.ARMED,
        router=route,
        poll_period_s=args.poll_s,
        decide_period_s=args.decide_s,
        min_dwell_s=args.dwell_s,
        store_every_s=60.0,
        policies=policies,
    )
    probes = Probes()
    assembly.controller.detector = probes.detector
    assembly.controller.planner = TimedPlanner(assembly.controller.planner, probes)  # type: ignore[assignment]
    assembly.controller.listeners.append(probes.tick)
    polled.listeners.append(assembly.controller.offer)  # as `wattwise run` wires it
    assembly.controller.acting.append(polled.hold_bulk)
    await polled.prime()
    tune_gc_for_controller()  # as `wattwise run` does once its site and drivers are up
    served = dict(ready["served"])
    served["http-json orchestrator"] = 1
    rig = Rig(site, proc, control, built, orchestrator, polled, assembly, probes, served, in_process)
    rig.tasks = [asyncio.create_task(assembly.controller.run())]
    rig.aggregator = aggregator
    return rig


# ---- one trial ---------------------------------------------------------------------------------
def _sent_and_answers(rig: Rig, since_s: float, until_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Commands sent in [since_s, until_s), and their answers whenever they came."""
    entries = rig.assembly.journal.entries(since_s=since_s, limit=10**7)
    sent = {e.command_id: e for e in entries if e.phase is Phase.SENT and e.t_s < until_s}
    answers = {e.command_id: e for e in entries if e.phase in ANSWERED and e.command_id in sent}
    refused = {e.command_id for e in entries if e.phase is Phase.REFUSED and e.t_s < until_s}
    return sent, {"answers": answers, "refused": refused}


async def _quiet(rig: Rig, since_s: float, quiet_s: float, max_s: float, done: Any = None) -> bool:
    """Wait until ticks have sent nothing for ``quiet_s`` (and ``done()``), or ``max_s``; True when quiet."""
    while time.time() - since_s < max_s:
        await asyncio.sleep(0.2)
        if rig.probes.busy():
            continue
        sends = [end for _, end, _, sent in rig.probes.ticks if end >= since_s and sent]
        last = max(sends, default=None)
        if last is not None and time.time() - last >= quiet_s and (done is None or done()):
            return True
        if last is None and done is not None and done() and time.time() - since_s >= quiet_s:
            return True
    return False


def _q(values: list[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


async def trial(rig: Rig, args: argparse.Namespace, rng: random.Random, fast_path: bool) -> dict[str, Any]:
    rig.probes.fast_path = fast_path
    await asyncio.sleep(rng.uniform(0.0, args.poll_s))
    t0 = time.time()
    await rig.inject([{"at_s": 0, "kind": "feed_loss", "target": u} for u in UTILITIES])
    quiet = await _quiet(rig, t0, args.quiet_s, args.max_response_s)
    await asyncio.sleep(max(0.0, t0 + args.hold_s - time.time()))
    t_back = time.time()
    restore = await _restore(rig, args, t_back)  # acks of the response that come late are still counted
    sent, rest = _sent_and_answers(rig, t0, t_back)
    answers = rest["answers"]
    out: dict[str, Any] = {"fast_path": fast_path, "quiet": quiet, "sent": len(sent)}
    out["acked"] = sum(a.phase is Phase.ACKED for a in answers.values())
    out["failed"] = sum(a.phase is Phase.FAILED for a in answers.values())
    out["unanswered"] = len(sent) - len(answers)
    out["refused"] = len(rest["refused"])
    out["kinds"] = dict(Counter(e.kind for e in sent.values()))
    # When each kind went out and came back: [first sent, last sent, last answer] − injection, s.
    spans: dict[str, list[float]] = {}
    for c, e in sent.items():
        span = spans.setdefault(str(e.kind), [e.t_s - t0, e.t_s - t0, float("nan")])
        span[0], span[1] = min(span[0], e.t_s - t0), max(span[1], e.t_s - t0)
        if c in answers:
            last = answers[c].t_s - t0
            span[2] = last if span[2] != span[2] else max(span[2], last)
    out["spans"] = spans
    out["all_acked"] = bool(sent) and out["acked"] == len(sent)
    out["last_ack_s"] = max((a.t_s for a in answers.values()), default=float("nan")) - t0
    det = [(t, e) for t, e in rig.probes.detections if t >= t0]
    out["event"] = det[0][1] if det else None
    out["detect_s"] = det[0][0] - t0 if det else float("nan")
    dec = [(s, e) for s, e, _ in rig.probes.decisions if s >= t0]
    acting = [tk for tk in rig.probes.ticks if t0 <= tk[0] < t_back and tk[3]]  # the restore is not the response
    if acting:
        first = acting[0]
        first_dec = next((e for s, e in dec if first[0] <= s <= first[1]), first[0])
        ids = set(first[3])
        first_acks = [answers[c].t_s for c in ids if c in answers]
        out["first_sent"] = len(ids)
        out["first_decision_s"] = first_dec - t0
        out["first_acks_s"] = max(first_acks, default=float("nan")) - t0
        out["decide_after_detect_s"] = first_dec - (det[0][0] if det else first[0])
        out["acting_ticks"] = len(acting)
        # The event's response: every decision an event triggered in the window (the outage's
        # own, and those of the events it sets off, such as a UPS going on battery a moment
        # after its feed is lost); routine re-plans are counted apart. Fast path off, no
        # decision is event-triggered: the first acting one stands for the response.
        evented = [tk for tk in acting if tk[2] is not None] or [first]
        ev_ids = {c for tk in evented for c in tk[3]}
        out["event_sent"] = len(ev_ids)
        out["event_all_acked"] = all(c in answers and answers[c].phase is Phase.ACKED for c in ev_ids)
        out["event_acks_s"] = max((answers[c].t_s for c in ev_ids if c in answers), default=float("nan")) - t0
        out["event_decisions"] = len(evented)
        # Per acting tick: when it started, planned, ended, and each kind's answers (s after the injection).
        out["timeline"] = [_tick_timeline(tk, dec, answers, sent, t0) for tk in acting]
    out.update(restore)
    return out


def _tick_timeline(
    tk: tuple[float, float, str | None, list[str]],
    decisions: list[tuple[float, float]],
    answers: dict[str, Any],
    sent: dict[str, Any],
    t0: float,
) -> dict[str, Any]:
    """One acting tick: start, plan end, end, and per command kind [first, last] answer, − injection (s)."""
    planned = [e for s, e in decisions if tk[0] <= s <= tk[1]]
    kinds: dict[str, list[float]] = {}
    for c in tk[3]:
        if c in answers and c in sent:
            span = kinds.setdefault(str(sent[c].kind), [float("inf"), float("-inf"), 0])
            t = answers[c].t_s - t0
            span[0], span[1], span[2] = min(span[0], t), max(span[1], t), span[2] + 1
    return {
        "event": tk[2],
        "start_s": tk[0] - t0,
        "planned_s": (planned[0] - t0) if planned else float("nan"),
        "end_s": tk[1] - t0,
        "commands": len(tk[3]),
        "answers_by_kind": kinds,
    }


async def _restore(rig: Rig, args: argparse.Namespace, t_back: float) -> dict[str, Any]:
    rig.probes.fast_path = True
    await rig.inject([{"at_s": 0, "kind": "feed_return", "target": u} for u in UTILITIES])
    shed = [True]

    async def poll_shed() -> None:
        while True:
            shed[0] = bool((await rig.status())["svc_shed_any"])
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(poll_shed())
    try:
        done = await _quiet(rig, t_back, args.quiet_s, args.max_restore_s, lambda: not shed[0])
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    t_end = time.time()
    sent, rest = _sent_and_answers(rig, t_back, t_end)
    acked = sum(a.phase is Phase.ACKED for a in rest["answers"].values())
    return {"restore_sent": len(sent), "restore_acked": acked, "restore_s": t_end - t_back, "restored": done}


# ---- a site ------------------------------------------------------------------------------------
def cpu_s() -> float:
    return time.process_time()


async def run_site(name: str, args: argparse.Namespace, trials: int, baseline: int) -> dict[str, Any]:
    """Every trial on a fresh rig (twin seed ``seed + i``): no trial inherits another's unfinished restores."""
    site = sized_batteries(base_site(name), args.runtime_s)
    wire_servers = args.wire_servers if args.wire_servers is not None else len(site.servers) <= 2000
    rng = random.Random(args.seed)
    res: dict[str, Any] = {"site": name, "servers": len(site.servers), "services": len(site.services)}
    res.update({"wire_servers": wire_servers, "battery_wh": [u.battery_wh for u in site.ups]})
    ticks: list[float] = []
    seed = args.seed
    for mode, n in (("fast", trials), ("baseline", baseline)):
        cpu0, wall0, load0 = cpu_s(), time.perf_counter(), os.getloadavg()[0]
        runs = []
        devices_cpu_s = 0.0
        for i in range(n):
            t_build = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="wattwise-event-ack-") as tmp:
                rig = await build_rig(site, args, wire_servers, seed, Path(tmp))
                seed += 1
                build_s = time.perf_counter() - t_build
                try:
                    await asyncio.sleep(args.warmup_s)
                    r = await trial(rig, args, rng, fast_path=mode == "fast")
                    r.update({"build_s": build_s, "seed": seed - 1})
                    try:
                        r["devices_cpu_s"] = float((await rig.status())["cpu_s"])
                    except httpx.HTTPError as err:  # the trial's figures stand; only this one is lost
                        print(f"  device process gave no status ({type(err).__name__})", file=sys.stderr)
                        r["devices_cpu_s"] = float("nan")
                    else:
                        devices_cpu_s += r["devices_cpu_s"]
                    ticks += [end - start for start, end, _, _ in rig.probes.ticks]
                    res.update({"served": rig.served, "in_process": rig.in_process})
                    res["policies"] = [p.name for p in rig.assembly.planner.policies]
                finally:
                    await rig.stop()
            runs.append(r)
            print(f"  {name} {mode} {i + 1}/{n}: {_line(r)}", file=sys.stderr, flush=True)
        res[mode] = {
            "trials": runs,
            "cpu_s": cpu_s() - cpu0,
            "devices_cpu_s": devices_cpu_s,
            "wall_s": time.perf_counter() - wall0,
            "load_avg": (load0 + os.getloadavg()[0]) / 2,
        }
    res["build_s"] = statistics.median(r["build_s"] for m in ("fast", "baseline") for r in res[m]["trials"])
    res["tick_s"] = _tick_stats(ticks)
    return res


def _tick_stats(took: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(took), "p99": _q(took, 99), "max": max(took), "n": len(took)}


def _line(r: dict[str, Any]) -> str:
    spans = "; ".join(f"{k} {a:.2f}-{b:.2f}→{c:.2f}" for k, (a, b, c) in sorted(r.get("spans", {}).items()))
    return (
        f"[{spans}] "
        f"sent {r['sent']} acked {r['acked']} detect {r['detect_s']:.2f} s first acks "
        f"{r.get('first_acks_s', float('nan')):.2f} s all acks {r['last_ack_s']:.2f} s; restores "
        f"{r['restore_acked']}/{r['restore_sent']} in {r['restore_s']:.0f} s"
    )


# ---- report ------------------------------------------------------------------------------------
def summary(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = [r[key] for r in runs if key in r and r[key] == r[key]]
    if not values:
        return {}
    return {"p50": statistics.median(values), "p99": _q(values, 99), "max": max(values), "n": len(values)}


def command(argv: list[str]) -> str:
    kept = [a for i, a in enumerate(argv) if not a.startswith("--out") and (i == 0 or argv[i - 1] != "--out")]
    return " ".join([".venv/bin/python bench/event_ack.py", *kept])


def _fmt(s: dict[str, float]) -> str:
    return f"{s['p50']:.2f} / {s['p99']:.2f} / {s['max']:.2f}" if s else "–"


def site_section(res: dict[str, Any], args: argparse.Namespace) -> list[str]:
    fast, base = res["fast"]["trials"], res["baseline"]["trials"]
    served = ", ".join(f"{n} {p}" for p, n in sorted(res["served"].items()))
    per_event = summary(fast, "sent")
    kinds: Counter[str] = Counter()
    for r in fast:
        kinds.update(r["kinds"])
    lines = [
        f"## {res['site']}: {res['servers']} servers, {res['services']} services",
        "",
        f"Policies: {', '.join(res['policies'])}. On the wire: {served} endpoints. "
        f"In process: {'; '.join(res['in_process']) or 'nothing'}. "
        f"UPS batteries sized to {args.runtime_s:.0f} s of their load "
        f"({min(res['battery_wh']) / 1000:.1f}–{max(res['battery_wh']) / 1000:.1f} kWh). "
        f"Each trial on a fresh rig (new twin, seed + trial number, endpoints and controller), built in "
        f"{res['build_s']:.0f} s (median), then {args.warmup_s:g} s of warm-up.",
        "",
        "Seconds after the injection (p50 / p99 / max):",
        "",
        "| figure | fast path (event decides at once) | baseline: fast path off |",
        "|---|---|---|",
        f"| trials | {len(fast)} | {len(base)} |",
        f"| injection → detection (tick that sees it) | {_fmt(summary(fast, 'detect_s'))} | "
        f"(seen: {_fmt(summary(base, 'detect_s'))}) |",
        f"| detection → decision (plan returned) | {_fmt(summary(fast, 'decide_after_detect_s'))} | – |",
        f"| injection → first decision that sends | {_fmt(summary(fast, 'first_decision_s'))} | "
        f"{_fmt(summary(base, 'first_decision_s'))} |",
        f"| injection → first decision's commands all acked | {_fmt(summary(fast, 'first_acks_s'))} | "
        f"{_fmt(summary(base, 'first_acks_s'))} |",
        f"| **injection → every command of the event-triggered decisions acked** | "
        f"**{_fmt(summary(fast, 'event_acks_s'))}** | {_fmt(summary(base, 'event_acks_s'))} |",
        f"| event-triggered decisions per event | {_fmt(summary(fast, 'event_decisions'))} | – |",
        f"| commands of the event-triggered decisions | {_fmt(summary(fast, 'event_sent'))} | "
        f"{_fmt(summary(base, 'event_sent'))} |",
        f"| trials with every command of those decisions acked | {sum(bool(r.get('event_all_acked')) for r in fast)}"
        f"/{len(fast)} | {sum(bool(r.get('event_all_acked')) for r in base)}/{len(base)} |",
        f"| injection → every command sent until quiet acked (routine re-plans included) | "
        f"{_fmt(summary(fast, 'last_ack_s'))} | {_fmt(summary(base, 'last_ack_s'))} |",
        f"| commands per event (sent) | {_fmt(summary(fast, 'sent'))} | {_fmt(summary(base, 'sent'))} |",
        f"| commands of the first decision | {_fmt(summary(fast, 'first_sent'))} | "
        f"{_fmt(summary(base, 'first_sent'))} |",
        f"| ticks that sent commands | {_fmt(summary(fast, 'acting_ticks'))} | {_fmt(summary(base, 'acting_ticks'))} |",
        f"| trials with every sent command acked | {sum(r['all_acked'] for r in fast)}/{len(fast)} | "
        f"{sum(r['all_acked'] for r in base)}/{len(base)} |",
        f"| sent but failed (device said no, or no answer within the actuator's 5 s) / never answered, all trials "
        f"| {sum(r['failed'] for r in fast)} / {sum(r['unanswered'] for r in fast)} "
        f"| {sum(r['failed'] for r in base)} / {sum(r['unanswered'] for r in base)} |",
        f"| refused by interlocks (not sent), per event | {_fmt(summary(fast, 'refused'))} | "
        f"{_fmt(summary(base, 'refused'))} |",
        f"| restores after the feeds return (not in the latency): acked / sent, all trials | "
        f"{_restores(fast)} | {_restores(base)} |",
        f"| controller process CPU / wall, all trials (rig builds included) | {_busy(res['fast'])} | "
        f"{_busy(res['baseline'])} |",
        f"| device process CPU (twin, emulators, stand-in), all trials | {_dev(res['fast'])} | "
        f"{_dev(res['baseline'])} |",
        f"| 1-min load average | {res['fast']['load_avg']:.1f} | {res['baseline']['load_avg']:.1f} |",
        "",
        f"Commands sent in response, by kind (all trials): "
        f"{', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))}. Per event: {_fmt(per_event)}. "
        f"Controller tick (read buffer, validate, detect, plan, act) over the whole run: p50 "
        f"{res['tick_s']['p50']:.2f} s, p99 {res['tick_s']['p99']:.2f} s, max {res['tick_s']['max']:.2f} s "
        f"({res['tick_s']['n']:.0f} ticks).",
        "",
    ]
    lines += _verdict(res, args)
    return lines


def _dev(mode: dict[str, Any]) -> str:
    if "devices_cpu_s" not in mode:
        return "– (same process)"
    frac = mode["devices_cpu_s"] / mode["wall_s"] if mode["wall_s"] else 0.0
    return f"{mode['devices_cpu_s']:.0f} s ({frac * 100:.0f} % of a core)"


def _busy(mode: dict[str, Any]) -> str:
    frac = mode["cpu_s"] / mode["wall_s"] if mode["wall_s"] else 0.0
    return f"{mode['cpu_s']:.0f} s / {mode['wall_s']:.0f} s (one core {frac * 100:.0f} % busy)"


def _restores(runs: list[dict[str, Any]]) -> str:
    acked, sent = sum(r["restore_acked"] for r in runs), sum(r["restore_sent"] for r in runs)
    took = summary(runs, "restore_s")
    return f"{acked} / {sent} (p50 {took['p50']:.0f} s to all services back)" if took else "–"


def _stagger(args: argparse.Namespace) -> str:
    own = "the policy's own, 5 s"
    return own if args.restore_stagger_s is None else f"{args.restore_stagger_s:g} s ({own})"


def _verdict(res: dict[str, Any], args: argparse.Namespace) -> list[str]:
    fast = res["fast"]["trials"]
    whole, first = summary(fast, "last_ack_s"), summary(fast, "first_acks_s")
    evented = summary(fast, "event_acks_s")
    out = []
    labelled = (
        ("every command of the event-triggered decisions", evented),
        ("the first decision's commands", first),
        ("everything sent until quiet (routine re-plans included)", whole),
    )
    for label, s in labelled:
        if s:
            met = "meets" if s["p99"] <= args.goal_s else "does NOT meet"
            out.append(f"- {label}: p99 {s['p99']:.2f} s {met} the {args.goal_s:.0f} s goal.")
    if res["fast"]["wall_s"] and res["fast"]["cpu_s"] / res["fast"]["wall_s"] >= 0.9:
        out.append(
            "- the controller process was saturated (one core at least 90 % busy): polls and commands queued "
            "behind each other, so these figures bound this rig, not only the controller. A failed command is "
            "one the device refused or that the actuator's 5 s limit cut off; this report does not tell the two "
            "apart."
        )
    return ["Verdict:", "", *out, ""]


def reference_loop_s() -> float:
    """Seconds for 10 million pure-Python additions: how fast this host runs the rig (lower is faster)."""
    t0, total = time.perf_counter(), 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - t0


def _speed(saved: dict[str, Any]) -> str:
    ref = saved.get("reference_loop_s")
    return f" (10 million pure-Python additions took {ref:.2f} s at the start: compare hosts by it)" if ref else ""


def report(results: list[dict[str, Any]], args: argparse.Namespace, saved: dict[str, Any]) -> str:
    if "total_wall_s" in saved:
        whole = f"{saved['total_wall_s']:.0f} s wall, {saved['total_cpu_s']:.0f} s CPU"
    else:  # runs saved before the totals were: the trials' own sums (rig build excluded)
        modes = [r[m] for r in results for m in ("fast", "baseline")]
        whole = (
            f"{sum(m['wall_s'] for m in modes):.0f} s wall, {sum(m['cpu_s'] for m in modes):.0f} s CPU (trials only)"
        )
    lines = [
        "# Event → all actions acknowledged, over real protocols on loopback",
        "",
        f"Command: `{command(args.argv)}`",
        "",
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"{saved['measured_at']}{_speed(saved)}; the load averages below were taken during each "
        f"phase. The machine is shared: when the load average exceeds the core count, wall-clock figures include "
        f"waiting for a CPU. Whole run: {whole} in this process "
        "(the controller process; the device process's CPU is given per site).",
        "",
        f"Set-up: controller armed on the wall clock, tick every {args.poll_s:g} s, woken at once when a "
        "polled batch changes an event metric (`Controller.offer`, as `wattwise run` wires it); device "
        "endpoints polled by their own coordinators: UPS/ATS (NUT), racklets (Modbus) and the orchestrator "
        f"(services, feed metering) every {args.ups_poll_s:g} s, PDUs (SNMP) every {args.pdu_poll_s:g} s, servers "
        f"every {args.server_poll_s:g} s; routine decisions every {args.decide_s:g} s, events decide at once. "
        "Event: both utility feeds lost with the generators failed to start (battery-only outage), injected at "
        f"a random phase of the tick (seed {args.seed}); response over when nothing was sent for {args.quiet_s:g} s; "
        f"feeds back after {args.hold_s:g} s (flap interlock dwell {args.dwell_s:g} s, so restores are not "
        f"refused); twin server boot {args.boot_s:g} s and allocation restore step {_stagger(args)} (both only "
        "pace the restores between trials). 'Acked' = the journal holds an `acked` entry for the command (the "
        "device or orchestrator answered ok over its protocol).",
        "",
        "Two processes, as on the floor the devices do their own work: the device process "
        "(`bench/event_ack_devices.py`: the twin on the wall clock, its emulated SNMP agents, Redfish BMCs and "
        "Modbus units, the orchestrator stand-in; upsd beside it) and the controller process (this one: the "
        "production drivers built from the endpoints file the device process wrote, by the same loader as "
        "`wattwise run --endpoints`, their coordinators, and the controller). The machine has 2 cores, so the "
        "two share them with upsd. The orchestrator is a JSON-over-HTTP stand-in on loopback, not a "
        "Kubernetes or Slurm API server.",
        "",
        "Where the time goes: a change reaches the controller when the device's coordinator next polls it (up "
        f"to {args.ups_poll_s:g} s for a UPS, plus the emulator's sensor refresh: {args.refresh_s:g} s, "
        f"{getattr(args, 'refresh_10k_s', 1.0):g} s at 10k); the batch "
        "wakes the loop, which validates it, detects the event and decides at once. The response is sent "
        "layer by layer (`Action.sequence`: sheds least important tier first and dependants before their "
        "dependencies, then the outlets of servers left with nothing to run); each layer goes out as soon "
        "as the one before it is acknowledged, with no fixed delay between layers.",
        "",
    ]
    lines += [
        "Before the changes of ADR 0004 (docs/adr/0004-event-response-path.md), the same trials on one "
        "process, shed layers 0.5 s apart, one SNMP SET per outlet, ticks not woken by events: example "
        "p99 81.1 s to the whole response and 22.6 s to the first tick's commands, 10k p99 65.2 s "
        "(this report's earlier version, 2026-11-24 17:37 UTC).",
        "",
    ]
    for res in results:
        if "failed" in res:
            lines += [f"## {res['site']}: the run failed", "", f"`{res['failed']}`: no figures for this site.", ""]
            continue
        lines += site_section(res, args)
    lines += [f"Raw per-trial figures: `{args.out.with_suffix('.json').name}`.", ""]
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    for name in args.sites:
        print(f"site {name}", file=sys.stderr, flush=True)
        large = name == "10k" and args.trials_10k is not None
        trials, baseline = (args.trials_10k, args.baseline_10k) if large else (args.trials, args.baseline)
        try:
            out.append(await run_site(name, args, trials, baseline))
        except Exception as err:  # noqa: BLE001 - the other sites' figures are still reported
            # The rig's own frame nearest the failure (the last frame is inside httpx or asyncio).
            frames = traceback.extract_tb(err.__traceback__)
            where = next((f for f in reversed(frames) if Path(f.filename).name == Path(__file__).name), frames[-1])
            why = f"{type(err).__name__}: {err} (in {where.name}, {Path(where.filename).name}:{where.lineno})"
            traceback.print_exc()
            out.append({"site": name, "failed": why})
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="40-server site, 3 trials, 1 baseline (under a minute)")
    p.add_argument("--sites", nargs="+", default=["example", "10k"], choices=["example", "10k", "quick"])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--baseline", type=int, default=3, help="trials with the fast path off")
    p.add_argument("--trials-10k", type=int, default=None, help="trials at 10k servers (default: --trials)")
    p.add_argument("--baseline-10k", type=int, default=1)
    p.add_argument("--poll-s", type=float, default=1.0, help="controller tick (an event wakes it at once)")
    p.add_argument("--ups-poll-s", type=float, default=0.5, help="UPS/ATS (NUT), racklet and orchestrator poll period")
    p.add_argument("--pdu-poll-s", type=float, default=10.0)
    p.add_argument("--server-poll-s", type=float, default=10.0)
    p.add_argument("--decide-s", type=float, default=5.0)
    p.add_argument("--dwell-s", type=float, default=10.0, help="flap interlock dwell")
    p.add_argument("--hold-s", type=float, default=12.0, help="least outage length")
    p.add_argument("--quiet-s", type=float, default=4.0)
    p.add_argument("--max-response-s", type=float, default=60.0)
    p.add_argument("--max-restore-s", type=float, default=30.0)
    p.add_argument(
        "--policies",
        choices=["allocation", "default"],
        default="allocation",
        help="allocation: the power-event allocation alone; default: assemble's default set as checked out",
    )
    p.add_argument("--refresh-s", type=float, default=0.2, help="emulated devices' sensor refresh period")
    p.add_argument(
        "--refresh-10k-s",
        type=float,
        default=1.0,
        help="the same above 2 000 servers (at 0.2 s the device process cannot keep up at 10k)",
    )
    p.add_argument("--restore-stagger-s", type=float, default=1.0, help="allocation's restore step (its own: 5 s)")
    p.add_argument("--boot-s", type=float, default=15.0, help="twin's server boot time (restores only)")
    p.add_argument("--runtime-s", type=float, default=400.0, help="UPS battery size, as seconds of its own load")
    p.add_argument("--warmup-s", type=float, default=5.0)
    p.add_argument("--goal-s", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wire-servers", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "reports" / "event_ack.md")
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop", help="event loop of both processes")
    p.add_argument("--profile", type=Path, default=None, help="write the controller process's cProfile stats here")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.sites, args.trials, args.baseline, args.warmup_s = ["quick"], 3, 1, 2.0
        args.hold_s, args.dwell_s, args.quiet_s, args.boot_s, args.max_restore_s = 4.0, 3.0, 1.5, 1.0, 6.0
        args.runtime_s = 120.0  # the 40-server site needs sheds for sure (at 400 s it is marginal)
    return args


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], str]:
    """Measure, write the report and its JSON; returns both."""
    reference_s = reference_loop_s()
    wall0, cpu0 = time.perf_counter(), cpu_s()
    factory = new_event_loop if args.loop == "uvloop" else asyncio.new_event_loop  # as `wattwise run`, or not
    with asyncio.Runner(loop_factory=factory) as runner:
        if args.profile is not None:  # where the controller process spends its time
            import cProfile

            with cProfile.Profile() as prof:
                results = runner.run(amain(args))
            prof.dump_stats(args.profile)
        else:
            results = runner.run(amain(args))
    saved = {
        "args": _jsonable(vars(args)),
        "sites": results,
        "total_wall_s": time.perf_counter() - wall0,
        "total_cpu_s": cpu_s() - cpu0,
        "reference_loop_s": reference_s,
        "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(saved, indent=1))
    text = report(results, args, saved)
    args.out.write_text(text)
    return results, text


def rerender(path: Path) -> str:
    """The report again from a run's JSON (same figures; the text as this script writes it now)."""
    saved = json.loads(path.read_text())
    args = argparse.Namespace(**saved["args"])
    args.out = path.with_suffix(".md")
    saved.setdefault("measured_at", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime)))
    text = report(saved["sites"], args, saved)
    args.out.write_text(text)
    return text


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def main() -> None:
    if sys.argv[1:2] == ["--from-json"]:
        print(rerender(Path(sys.argv[2])))
        return
    args = parse()
    # Quiet the per-command warnings of a saturated rig on the console (the command line only:
    # run() leaves logging alone, so an in-process caller keeps its own levels).
    logging.getLogger("wattwise").setLevel(logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    _, text = run(args)
    print(text)
    print(f"Reproduce: {command(args.argv)}")


if __name__ == "__main__":
    main()
