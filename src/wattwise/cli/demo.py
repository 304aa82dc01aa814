"""``wattwise demo``: the whole system on a simulated site, in one process.

A digital twin of the site stands in for the floor; the real controller polls it through the
``TwinDriver`` (validation, the embedded DuckDB store, prediction, policies, interlocked
actuation), and the API and dashboard serve the live state. The seed scenarios' events
(``scenarios/*.yaml``) are injected into the twin on a loop so there is always something to
watch: each scenario's timeline is shifted so its first event comes ``--lead-in-s`` after its
turn starts, and the list restarts when done. Scenario capacity overrides are not applied (the
site stays the one given). ``--speed N`` runs simulated time N× faster than the wall clock.
``--wire`` polls the twin over real protocol endpoints on loopback (:mod:`wattwise.cli.demo_wire`).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from threading import Event as Event_
from typing import Annotated

import typer
from rich.console import Console

from wattwise.act.base import Mode as ActMode
from wattwise.api.app import create_app
from wattwise.api.auth import TokenStore
from wattwise.api.limits import ApiLimits
from wattwise.api.live_backend import LiveBackend
from wattwise.api.schemas import Role
from wattwise.api.server import ServerThread
from wattwise.cli.demo_wire import wire_drivers
from wattwise.cli.store_cmds import open_store
from wattwise.config import Settings
from wattwise.control.assemble import assemble, tune_gc_for_controller
from wattwise.control.eventloop import new_event_loop
from wattwise.control.retrain import StoreRetrainer
from wattwise.errors import ConfigError, WattwiseError
from wattwise.model.clock import Clock
from wattwise.model.loader import load_site
from wattwise.model.values import ActionKind
from wattwise.sim.driver import TwinDriver
from wattwise.sim.faults import EndHook, check_targets, inject
from wattwise.sim.scenario import Event, load_scenario
from wattwise.sim.twin import Twin
from wattwise.store.duckdb_store import DuckDBStore

logger = logging.getLogger(__name__)
console = Console(highlight=False, soft_wrap=True)
REPO = Path(__file__).resolve().parents[3]


class ScaledClock:
    """Wall time running ``speed`` times faster from the moment it is made (Unix seconds)."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self._t0_s = time.time()
        self._m0_s = time.monotonic()

    def now_s(self) -> float:
        """Scaled time, s."""
        return self._t0_s + (time.monotonic() - self._m0_s) * self.speed

    async def sleep_s(self, duration_s: float) -> None:
        """Sleep ``duration_s`` of scaled time."""
        await asyncio.sleep(max(0.0, duration_s) / self.speed)


@dataclass(frozen=True)
class Slot:
    """One scenario's turn: events at seconds from the turn's start, and its length."""

    name: str
    events: tuple[Event, ...]
    length_s: float


def playlist(paths: list[Path], twin: Twin, lead_in_s: float) -> list[Slot]:
    """Scenario turns whose targets the site has (others are skipped with a warning)."""
    slots = []
    for path in paths:
        try:
            sc = load_scenario(path)
            check_targets(twin, sc.events, str(path))
        except ConfigError as err:
            logger.warning("demo: skipping scenario %s: %s", path.name, str(err).splitlines()[0])
            continue
        if not sc.events:
            continue
        first_s = min(ev.at_s for ev in sc.events)
        events = tuple(ev.model_copy(update={"at_s": ev.at_s - first_s + lead_in_s}) for ev in sc.events)
        slots.append(Slot(sc.name, events, max(sc.duration_s - first_s + lead_in_s, lead_in_s + 60.0)))
    return slots


def _catch_up(twin: Twin, now_s: float) -> None:
    """Step the twin to ``now_s`` so an event lands at its time, not at the next poll."""
    dt = twin.params.step_s
    while twin.t_s + dt <= now_s + 1e-9:
        twin.step(dt)


async def play(
    twin: Twin, slots: list[Slot], clock: ScaledClock | Clock, check_s: float = 0.25, repeat: bool = True
) -> None:
    """Inject the slots' events at their times, forever (cancel to stop) or once (``repeat=False``)."""
    while slots:
        for slot in slots:
            start_s = clock.now_s()
            console.print(f"scenario {slot.name}: {len(slot.events)} events over {slot.length_s:.0f} s (sim)")
            queue: list[tuple[float, int, Event | EndHook]] = [
                (start_s + e.at_s, i, e) for i, e in enumerate(slot.events)
            ]
            heapq.heapify(queue)
            seq = len(queue)
            while clock.now_s() < start_s + slot.length_s:
                while queue and queue[0][0] <= clock.now_s():
                    _, _, item = heapq.heappop(queue)
                    _catch_up(twin, clock.now_s())
                    if callable(item):
                        item(twin)
                        twin.mark_dirty()
                        continue
                    ended = inject(twin, item)
                    logger.info("demo: inject %s %s", item.kind, item.target)
                    if ended is not None:
                        heapq.heappush(queue, (start_s + ended[0], seq, ended[1]))
                        seq += 1
                await asyncio.sleep(check_s)
        if not repeat:
            return


OPENING = "002-utility-loss-ups-ats"
"""The playlist opens with the utility loss (UPS ride-through, ATS transfer): the headline event."""


RAW_KEEP_S = 3600.0
"""Raw readings kept (simulated seconds); older ones survive as 5-minute roll-ups for a week."""


async def retain(backend: LiveBackend, clock: ScaledClock, every_s: float = 600.0) -> None:
    """Apply the store's retention every ``every_s`` simulated seconds, so a long demo stays small."""
    while True:
        await clock.sleep_s(every_s)
        try:
            done = await asyncio.to_thread(
                backend.store.apply_retention, clock.now_s(), RAW_KEEP_S, 300.0, 7 * 86_400.0
            )
        except WattwiseError as err:
            logger.warning("demo: retention failed: %s", err)
            continue
        logger.info("demo: retention deleted %d raw rows", done.deleted_raw)


def _scenario_files(scenarios: Path, names: list[str] | None) -> list[Path]:
    files = sorted(scenarios.glob("*.yaml"))
    if names:
        return [f for f in files if f.stem in names or any(f.stem.startswith(n) for n in names)]
    first = next((i for i, f in enumerate(files) if f.stem == OPENING), 0)
    return files[first:] + files[:first]


def _default_path(relative: str) -> Path:
    here = Path(relative)
    return here if here.exists() else REPO / relative


async def _run(
    backend: LiveBackend,
    twin: Twin,
    slots: list[Slot],
    clock: ScaledClock,
    duration_s: float | None,
    alive: Event_,
    retrainer: StoreRetrainer | None = None,
) -> None:
    """Run the controller and the scenario player until stopped (signal or ``duration_s``)."""
    controller = backend.assembly.controller
    alive.set()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, controller.stop)
    if duration_s is not None:
        loop.call_later(duration_s, controller.stop)
    tasks = [asyncio.create_task(play(twin, slots, clock)), asyncio.create_task(retain(backend, clock))]
    if retrainer is not None:
        tasks.append(asyncio.create_task(retrainer.run(clock)))
    try:
        await controller.run()
    finally:
        alive.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def demo(
    site_path: Annotated[
        Path | None, typer.Option("--site", help="Site file (default examples/two-hall-site.yaml)")
    ] = None,
    mode: Annotated[str, typer.Option(help="observe, dry-run or armed")] = "armed",
    speed: Annotated[float, typer.Option(min=0.1, max=1000.0, help="Simulated seconds per wall second")] = 1.0,
    duration_s: Annotated[float | None, typer.Option(min=1.0, help="Stop after this many wall seconds")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="API port (default settings.api_port)")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default settings.api_host)")] = None,
    scenario: Annotated[
        list[str] | None, typer.Option(help="Play only these scenarios (name or prefix, repeatable)")
    ] = None,
    scenarios_dir: Annotated[Path | None, typer.Option(help="Folder of scenario YAML files")] = None,
    lead_in_s: Annotated[float, typer.Option(min=0.0, help="Simulated seconds before a scenario's first event")] = 60.0,
    poll_s: Annotated[float, typer.Option(min=0.1, help="Wall seconds between polls of the twin")] = 2.0,
    store_path: Annotated[
        Path | None, typer.Option("--store", help="DuckDB file (default: the settings' store)")
    ] = None,
    store_every_s: Annotated[
        float, typer.Option(min=0.0, help="Simulated seconds between stored polls (every poll is validated)")
    ] = 60.0,
    approve: Annotated[
        list[str] | None, typer.Option(help="Action kind that waits for an operator, e.g. service_shed (repeatable)")
    ] = None,
    wire: Annotated[
        bool, typer.Option("--wire", help="Poll the twin over real NUT/SNMP/Redfish/Modbus on loopback (speed 1)")
    ] = False,
    retrain_every_s: Annotated[
        float | None,
        typer.Option(min=60.0, help="Retrain the power nodes' forecasters from the store every this many simulated s"),
    ] = None,
) -> None:
    """Run the twin, the controller and the dashboard together (Ctrl-C to stop)."""
    settings = Settings()
    try:
        act_mode = ActMode(mode)
        approval_kinds = frozenset(ActionKind(k) for k in approve or ())
        site = load_site(site_path or _default_path("examples/two-hall-site.yaml"))
        clock = ScaledClock(speed)
        twin = Twin(site, seed=0, start_s=clock.now_s(), record_timeline=False)
        slots = playlist(_scenario_files(scenarios_dir or _default_path("scenarios"), scenario), twin, lead_in_s)
        if wire and speed != 1.0:
            raise ConfigError("--wire runs at --speed 1 (wire drivers stamp readings with the wall clock)")
        store = DuckDBStore(store_path) if store_path is not None else open_store(settings)
        loop = new_event_loop()
        wired = loop.run_until_complete(wire_drivers(twin, clock, poll_s)) if wire else None
    except (WattwiseError, ValueError, FileNotFoundError) as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2) from err
    assembly = assemble(
        site, wired.drivers if wired else [TwinDriver(twin, clock=clock)], store, clock, act_mode,
        router=wired.route if wired else None,
        poll_period_s=poll_s * speed, decide_period_s=settings.decision_period_s,
        approval_kinds=approval_kinds, store_every_s=store_every_s,
        node_forecasts=True,  # versions `wattwise train --store` registers are picked up while running
    )  # fmt: skip
    if wired is not None:
        wired.polled.listeners.append(assembly.controller.offer)  # an event decides when its poll lands
        assembly.controller.acting.append(wired.polled.hold_bulk)  # a response's commands before bulk polls
    tune_gc_for_controller()
    retrainer = None if retrain_every_s is None else StoreRetrainer(assembly.index, store, every_s=retrain_every_s)
    alive = Event_()
    backend = LiveBackend(assembly, store, clock, leader="self", controller_loop=loop, running=alive.is_set)
    tokens = TokenStore()
    admin = None if settings.admin_token is not None else tokens.issue("demo-admin", Role.ADMIN)[0]
    app = create_app(backend, settings, tokens, limits=ApiLimits(rate_per_s=50.0, burst=200))
    bind_host, bind_port = host or settings.api_host, port or settings.api_port
    try:
        server = ServerThread(app, bind_host, bind_port, start_timeout_s=60.0).start()
    except ConfigError as err:
        console.print(f"[red]{err} (is the port free? try --port)[/red]")
        if wired is not None:
            loop.run_until_complete(wired.close())
        raise typer.Exit(2) from err
    _banner(site.id, len(site.servers), mode, speed, server.url, admin, [s.name for s in slots])
    try:
        loop.run_until_complete(_run(backend, twin, slots, clock, duration_s, alive, retrainer))
    finally:
        server.stop()
        if retrainer is not None:
            retrainer.close()
        if wired is not None:
            loop.run_until_complete(wired.close())
        loop.close()
        store.close()
    console.print("wattwise demo stopped")


def _banner(site_id: str, servers: int, mode: str, speed: float, url: str, admin: str | None, names: list[str]) -> None:
    console.print(f"wattwise demo: site {site_id} ({servers} servers), controller {mode}, {speed:g}x real time")
    console.print(f"scenarios: {', '.join(names) or 'none'}")
    if admin is None:
        console.print(f"dashboard: {url}/  (log in with WATTWISE_ADMIN_TOKEN)")
    else:
        console.print(f"dashboard: {url}/#token={admin}")
        console.print(f"admin token (shown once): {admin}")
    console.print("Ctrl-C to stop")


def register(app: typer.Typer) -> None:
    """Add ``demo``."""
    app.command()(demo)
