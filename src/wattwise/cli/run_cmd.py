"""``wattwise run --site SITE --endpoints FILE``: the controller against real (or served) equipment.

Drivers are built from the endpoints file (``docs/endpoints.md``); each device is polled by its
own coordinator at its own period (a dead device is a status, never a stalled loop), and the
controller reads what arrived, validates and stores it (DuckDB), predicts, decides and, by
mode, only watches (``observe``, the default), journals what it would send (``dry-run``) or
sends it (``armed``, only when asked for). The API and dashboard serve the live state unless
``--no-api``. A status line is printed every ``--status-every-s`` (JSON lines with ``--json``).

Exit status: 0 stopped cleanly (signal or ``--duration-s``); 2 configuration error (site,
endpoints file, secrets, mode, API port); 3 no endpoint answered during the whole run;
1 anything else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event
from typing import Annotated

import typer
from rich.console import Console

from wattwise.act.base import Mode
from wattwise.api.app import create_app
from wattwise.api.auth import TokenStore
from wattwise.api.limits import ApiLimits
from wattwise.api.live_backend import LiveBackend
from wattwise.api.schemas import Role
from wattwise.api.server import ServerThread
from wattwise.cli.store_cmds import open_store
from wattwise.config import Settings
from wattwise.control.assemble import Assembly, assemble, tune_gc_for_controller
from wattwise.control.eventloop import new_event_loop
from wattwise.control.loop import TickReport
from wattwise.control.retrain import StoreRetrainer
from wattwise.drivers.endpoint_drivers import BuiltDrivers, build_drivers
from wattwise.drivers.endpoint_rules import load_endpoints
from wattwise.drivers.endpoints import LoadedEndpoints
from wattwise.drivers.polled import PolledDriver
from wattwise.errors import ConfigError, WattwiseError
from wattwise.model.clock import WallClock
from wattwise.model.loader import load_site
from wattwise.model.problems import Severity
from wattwise.model.site import Site
from wattwise.store.base import TimeSeriesStore
from wattwise.store.duckdb_store import DuckDBStore

logger = logging.getLogger(__name__)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_NOTHING_OBSERVED = 0, 1, 2, 3


@dataclass
class RunStats:
    """What the loop did so far, for the status line."""

    ticks: int = 0
    readings: int = 0
    accepted: int = 0
    events: list[str] = field(default_factory=list)
    verdicts: dict[str, int] = field(default_factory=dict)
    last: TickReport | None = None

    def take(self, report: TickReport) -> None:
        """Count one tick (runs on the loop's thread)."""
        self.ticks += 1
        self.readings += report.readings
        self.accepted += report.accepted
        self.last = report
        if report.event is not None:
            self.events.append(report.event)
        for v in report.verdicts:
            phase = str(v.phase)
            self.verdicts[phase] = self.verdicts.get(phase, 0) + 1


@dataclass
class Running:
    """The wired parts of one run."""

    site: Site
    loaded: LoadedEndpoints
    built: BuiltDrivers
    polled: PolledDriver
    assembly: Assembly
    store: TimeSeriesStore
    mode: Mode
    stats: RunStats = field(default_factory=RunStats)


def status(run: Running) -> dict[str, object]:
    """The status line's content."""
    health = run.polled.health()
    up = sum(1 for h in health if h.available)
    ever = sum(1 for h in health if h.last_ok_t_s is not None)
    last = run.stats.last
    return {
        "t_s": round(last.t_s, 3) if last else None,
        "mode": str(run.mode),
        "ticks": run.stats.ticks,
        "drivers_up": up,
        "drivers": len(health),
        "drivers_ever_up": ever,
        "unobserved": len(run.loaded.unobserved),
        "readings": run.stats.readings,
        "accepted": run.stats.accepted,
        "events": len(run.stats.events),
        "last_event": run.stats.events[-1] if run.stats.events else None,
        "verdicts": dict(run.stats.verdicts),
    }


def _print_status(run: Running, as_json: bool) -> None:
    s = status(run)
    if as_json:
        typer.echo(json.dumps(s, sort_keys=True))
        return
    verdicts = " ".join(f"{k}={v}" for k, v in sorted(run.stats.verdicts.items())) or "none"
    event = f"  last event: {s['last_event']}" if s["last_event"] else ""
    console.print(
        f"{s['mode']} tick {s['ticks']}: drivers up {s['drivers_up']}/{s['drivers']}, "
        f"{s['unobserved']} unobserved, readings {s['accepted']}/{s['readings']} accepted, "
        f"events {s['events']}, actions {verdicts}{event}",
        markup=False,
    )


async def _report(run: Running, every_s: float, as_json: bool) -> None:
    while True:
        await asyncio.sleep(every_s)
        _print_status(run, as_json)


async def _loop(
    run: Running, duration_s: float | None, every_s: float, as_json: bool, alive: Event, retrain_every_s: float | None
) -> None:
    """Run the controller until a signal or ``duration_s``; then stop the poller and close drivers."""
    controller = run.assembly.controller
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, controller.stop)
    if duration_s is not None:
        loop.call_later(duration_s, controller.stop)
    # One poll of everything first: the controller's first decision must not be made on no data.
    await run.polled.prime()
    run.polled.start()
    tasks = [asyncio.create_task(_report(run, every_s, as_json))]
    retrainer = (
        None if retrain_every_s is None else StoreRetrainer(run.assembly.index, run.store, every_s=retrain_every_s)
    )
    if retrainer is not None:
        tasks.append(asyncio.create_task(retrainer.run(controller.clock)))
    alive.set()
    try:
        await controller.run()
    finally:
        alive.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if retrainer is not None:
            retrainer.close()
        await run.polled.close()
        await run.built.close()


async def _wire(site: Site, loaded: LoadedEndpoints, store: TimeSeriesStore, mode: Mode, settings: Settings) -> Running:
    built = build_drivers(loaded, site)
    clock = WallClock()
    polled = PolledDriver(built.polled, clock, built.route, name="endpoints")
    poll_s = min((p for _, p in built.polled), default=loaded.spec.poll_period_s)
    assembly = assemble(
        site, [polled], store, clock, mode,
        router=built.route, poll_period_s=poll_s, decide_period_s=settings.decision_period_s,
        node_forecasts=True,  # versions `wattwise train --store` registers are picked up while running
    )  # fmt: skip
    tune_gc_for_controller()
    run = Running(site, loaded, built, polled, assembly, store, mode)
    polled.listeners.append(assembly.controller.offer)  # an event decides when its poll lands
    assembly.controller.acting.append(polled.hold_bulk)  # a response's commands before bulk polls
    assembly.controller.listeners.append(run.stats.take)
    if mode is Mode.ARMED and site.services:
        warning = unrouted_warning(built)
        if warning:
            err_console.print(warning, style="yellow", markup=False)
    return run


UNROUTED_SHEDS = (
    "warning: no endpoint can shed, restore or throttle services: those actions will fail (the outlets "
    "of their hosts then stay on), while PSU actions are still sent (docs/endpoints.md, 'Polling and acting')"
)


def unrouted_warning(built: BuiltDrivers) -> str:
    """The start-up warning about services no endpoint maps (empty when every one is mapped)."""
    if not built.can_shed():
        return UNROUTED_SHEDS
    missing = built.unrouted_services
    if not missing:
        return ""
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    return (
        f"warning: {len(missing)} of {len(built.site_services)} services are mapped by no endpoint "
        f"('services' in the endpoints file), so they cannot be shed, restored or throttled: {shown}"
    )


def _load(site_path: Path, endpoints_path: Path, mode: str) -> tuple[Site, LoadedEndpoints, Mode]:
    """Site, endpoints and mode, or a ConfigError naming what is wrong."""
    try:
        act_mode = Mode(mode)
    except ValueError as err:
        raise ConfigError(f"--mode must be observe, dry-run or armed, not {mode!r}") from err
    site = load_site(site_path)
    loaded = load_endpoints(endpoints_path, site)
    for p in loaded.problems:
        if p.severity is Severity.WARNING:
            err_console.print(str(p), style="yellow", markup=False)
    return site, loaded, act_mode


def _start_api(
    run: Running, settings: Settings, port: int | None, loop: asyncio.AbstractEventLoop, alive: Event
) -> ServerThread:
    backend = LiveBackend(
        run.assembly, run.store, WallClock(), leader="self", controller_loop=loop, running=alive.is_set
    )
    tokens = TokenStore()
    admin = None if settings.admin_token is not None else tokens.issue("run-admin", Role.ADMIN)[0]
    app = create_app(backend, settings, tokens, limits=ApiLimits(rate_per_s=50.0, burst=200))
    server = ServerThread(app, settings.api_host, port or settings.api_port, start_timeout_s=60.0).start()
    if admin is None:
        err_console.print(f"dashboard: {server.url}/  (log in with WATTWISE_ADMIN_TOKEN)")
    else:
        err_console.print(f"dashboard: {server.url}/#token={admin}  (admin token shown once)")
    return server


def run_cmd(
    site_path: Annotated[Path, typer.Option("--site", help="Site file")],
    endpoints_path: Annotated[Path, typer.Option("--endpoints", help="Endpoints file (docs/endpoints.md)")],
    mode: Annotated[str, typer.Option(help="observe (default), dry-run or armed")] = "observe",
    store_path: Annotated[
        Path | None, typer.Option("--store", help="DuckDB file (default: the settings' store)")
    ] = None,
    duration_s: Annotated[float | None, typer.Option(min=0.1, help="Stop after this many seconds")] = None,
    api_port: Annotated[int | None, typer.Option(min=1, max=65535, help="API port (default settings.api_port)")] = None,
    no_api: Annotated[bool, typer.Option("--no-api", help="Run without the API and dashboard")] = False,
    status_every_s: Annotated[float, typer.Option(min=0.5, help="Seconds between status lines")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Status lines as JSON")] = False,
    retrain_every_s: Annotated[
        float | None,
        typer.Option(min=60.0, help="Retrain the power nodes' forecasters from the store every this many seconds"),
    ] = None,
) -> None:
    """Watch a site through its endpoints and act on it (observe by default; armed only when asked)."""
    settings = Settings()
    # pymodbus logs every failed connect at WARNING; the poller already logs first failure and recovery.
    logging.getLogger("pymodbus.logging").setLevel(logging.ERROR)
    try:
        site, loaded, act_mode = _load(site_path, endpoints_path, mode)
        store = DuckDBStore(store_path) if store_path is not None else open_store(settings)
    except ConfigError as err:
        err_console.print(str(err), style="red", markup=False)
        raise typer.Exit(EXIT_CONFIG) from err
    except WattwiseError as err:
        err_console.print(str(err), style="red", markup=False)
        raise typer.Exit(EXIT_FAILED) from err
    opts = RunOptions(duration_s, api_port, no_api, status_every_s, as_json, retrain_every_s)
    code = _run(site, loaded, store, act_mode, settings, opts)
    raise typer.Exit(code)


@dataclass(frozen=True)
class RunOptions:
    """Command-line options of one run."""

    duration_s: float | None
    api_port: int | None
    no_api: bool
    status_every_s: float
    as_json: bool
    retrain_every_s: float | None = None


def _run(
    site: Site, loaded: LoadedEndpoints, store: TimeSeriesStore, mode: Mode, settings: Settings, opts: RunOptions
) -> int:
    loop = new_event_loop()
    try:
        # Some clients (pymodbus) bind to the running loop when made: build them on the loop that runs them.
        run = loop.run_until_complete(_wire(site, loaded, store, mode, settings))
    except ConfigError as err:
        loop.close()
        store.close()
        err_console.print(str(err), style="red", markup=False)
        return EXIT_CONFIG
    alive = Event()
    server: ServerThread | None = None
    try:
        if not opts.no_api:
            server = _start_api(run, settings, opts.api_port, loop, alive)
        err_console.print(_banner(run), markup=False)
        loop.run_until_complete(
            _loop(run, opts.duration_s, opts.status_every_s, opts.as_json, alive, opts.retrain_every_s)
        )
    except ConfigError as err:
        err_console.print(f"{err} (is the port free? try --api-port or --no-api)", style="red", markup=False)
        loop.run_until_complete(run.built.close())
        return EXIT_CONFIG
    finally:
        if server is not None:
            server.stop()
        loop.close()
        store.close()
    _print_status(run, opts.as_json)
    return EXIT_OK if any(h.last_ok_t_s is not None for h in run.polled.health()) else EXIT_NOTHING_OBSERVED


def _banner(run: Running) -> str:
    kinds: dict[str, int] = {}
    for d in run.built.drivers:
        kind = d.name.split(":", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    drivers = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    return (
        f"wattwise run: site {run.site.id}, mode {run.mode}, {drivers}; "
        f"{len(run.loaded.unobserved)} device(s) unobserved; Ctrl-C to stop"
    )


def register(app: typer.Typer) -> None:
    """Add ``run``."""
    app.command("run")(run_cmd)
