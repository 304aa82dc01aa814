"""The device side of bench/event_ack.py, in a process of its own: the twin behind real endpoints.

Run by ``bench/event_ack.py`` (one process per trial), never by hand. It loads the site
written by the parent, steps the twin on the wall clock, serves its devices on 127.0.0.1 over
real protocols (UPS and ATS through the real ``upsd``, PDUs as SNMP agents, racklets as Modbus
TCP units, servers as Redfish BMCs where ``--wire-servers``), and writes an endpoints file
(per-protocol poll periods) that the parent loads with the production loader, exactly as
``wattwise run --endpoints`` would.

One JSON-over-HTTP server on loopback carries what has no device protocol here:

* the orchestrator stand-in: ``GET /readings`` (services and feed metering) and ``POST /apply``
  (an ``Action`` → ``ActionResult``); when servers are not on the wire, ``GET /servers`` (server
  and PSU readings, as a BMC aggregator's API would give them) and ``POST /servers/apply``
  (power caps, PSU set-points);
* the bench's hand on the twin: ``POST /events`` (scenario events, injected now) and
  ``GET /status`` (whether any service is still shed, this process's CPU seconds).

``<out>/ready.json`` (written last) holds the port; SIGTERM stops everything (upsd by its PID).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from wattwise.control.eventloop import new_event_loop  # noqa: E402
from wattwise.drivers.base import Driver  # noqa: E402
from wattwise.drivers.endpoints import scheme_of  # noqa: E402
from wattwise.model.loader import load_site  # noqa: E402
from wattwise.model.values import Action, ActionKind, ActionResult, Reading  # noqa: E402
from wattwise.sim.driver import TwinDriver  # noqa: E402
from wattwise.sim.emulators.endpoints_doc import write_endpoints_file  # noqa: E402
from wattwise.sim.emulators.http import HttpRequest, HttpResponse, JsonHttpServer  # noqa: E402
from wattwise.sim.emulators.stack import start_endpoints  # noqa: E402
from wattwise.sim.faults import inject  # noqa: E402
from wattwise.sim.params import TwinParams  # noqa: E402
from wattwise.sim.scenario import parse_scenario  # noqa: E402
from wattwise.sim.twin import Twin  # noqa: E402

GENERATORS = ("generator-a", "generator-b")


class SensorRefresh:
    """The twin's readings refreshed at most every ``refresh_s`` (as a device's sensors are); commands apply at once.

    Without it every command would make the next endpoint request rebuild the whole site's
    readings (the emulators share one twin), a cost that grows with the site and that no real
    PDU or BMC has.
    """

    def __init__(self, driver: Driver, refresh_s: float) -> None:
        self.driver = driver
        self.name = driver.name
        self.refresh_s = refresh_s
        self._cached: list[Reading] | None = None
        self._at_s = 0.0

    def supports(self, kind: ActionKind) -> bool:
        return self.driver.supports(kind)

    async def read(self) -> list[Reading]:
        if self._cached is None or time.monotonic() - self._at_s > self.refresh_s:
            self._cached, self._at_s = await self.driver.read(), time.monotonic()
        return self._cached

    async def apply(self, action: Action) -> ActionResult:
        return await self.driver.apply(action)

    async def close(self) -> None:
        await self.driver.close()


def inject_now(twin: Twin, evs: list[dict[str, Any]]) -> None:
    """Inject scenario events now and make the twin show them at once."""
    for ev in parse_scenario({"name": "bench", "generate": {"servers": 1}, "events": evs}).events:
        inject(twin, ev)
    twin.mark_dirty()
    twin.step(max(1e-3, time.time() - twin.t_s))


async def keep_time(twin: Twin) -> None:
    """Step the twin up to the wall clock every 0.1 s (batteries drain whether polled or not)."""
    while True:
        dt = time.time() - twin.t_s
        if dt > 1e-3:
            twin.step(dt)
        await asyncio.sleep(0.1)


def handler(twin: Twin, orchestrator: Driver, servers: Driver) -> Any:
    async def rows(driver: Driver) -> HttpResponse:
        return HttpResponse(200, [[r.device_id, r.metric, r.value, r.t_s] for r in await driver.read()])

    async def apply(driver: Driver, body: str) -> HttpResponse:
        return HttpResponse(200, (await driver.apply(Action.model_validate_json(body))).model_dump())

    async def handle(req: HttpRequest) -> HttpResponse:
        if req.method == "GET" and req.path == "/readings":
            return await rows(orchestrator)
        if req.method == "POST" and req.path == "/apply":
            return await apply(orchestrator, req.body)
        if req.method == "GET" and req.path == "/servers":
            return await rows(servers)
        if req.method == "POST" and req.path == "/servers/apply":
            return await apply(servers, req.body)
        if req.method == "POST" and req.path == "/events":
            inject_now(twin, json.loads(req.body))
            return HttpResponse(200, {"t_s": twin.t_s})
        if req.method == "GET" and req.path == "/status":
            shed = bool(twin.work.svc_shed.any())
            return HttpResponse(200, {"svc_shed_any": shed, "cpu_s": time.process_time(), "t_s": twin.t_s})
        return HttpResponse(404, {"error": "not found"})

    return handle


def set_periods(path: Path, periods: dict[str, float]) -> None:
    """Give every entry of the endpoints file its protocol's poll period."""
    text = path.read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    doc = yaml.safe_load(text)
    for entry in doc["endpoints"]:
        entry["poll_period_s"] = periods[scheme_of(entry["url"])]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tmp.replace(path)


async def serve(args: argparse.Namespace) -> None:
    site = load_site(args.site)
    params = TwinParams(server_boot_s=args.boot_s)
    twin = Twin(site, seed=args.seed, params=params, start_s=time.time(), record_timeline=False)
    inject_now(twin, [{"at_s": 0, "kind": "generator_fail", "target": g} for g in GENERATORS])
    kinds = ("ups", "ats", "pdu", "outlet", "racklet", "psu") + (("server",) if args.wire_servers else ())
    protocols: tuple[Any, ...] = ("nut", "snmp", "modbus") + (("redfish",) if args.wire_servers else ())
    devices = SensorRefresh(TwinDriver(twin, name="devices", kinds=kinds), args.refresh_s)
    endpoints = await start_endpoints(devices, site, protocols=protocols)
    orchestrator = TwinDriver(twin, name="orchestrator", kinds=("service", "feed"))
    servers = SensorRefresh(TwinDriver(twin, name="servers", kinds=("server", "psu")), args.refresh_s)
    server = JsonHttpServer(handler(twin, orchestrator, servers))
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ticker = asyncio.create_task(keep_time(twin))
    try:
        doc = args.out / "endpoints.yaml"
        write_endpoints_file(doc, endpoints, site.id)
        set_periods(doc, json.loads(args.periods))
        counts: dict[str, int] = {}
        for e in endpoints.endpoints:
            counts[e.protocol] = counts.get(e.protocol, 0) + 1
        ready = {"port": server.port, "served": counts, "endpoints": str(doc)}
        (args.out / "ready.json.tmp").write_text(json.dumps(ready))
        (args.out / "ready.json.tmp").replace(args.out / "ready.json")
        await stop.wait()
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        await server.stop()
        await endpoints.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--boot-s", type=float, default=15.0)
    p.add_argument("--refresh-s", type=float, default=0.2)
    p.add_argument("--wire-servers", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--periods", required=True, help='JSON: {"nut": s, "snmp": s, "modbus": s, "redfish": s}')
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    factory = new_event_loop if args.loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args))


if __name__ == "__main__":
    main()
