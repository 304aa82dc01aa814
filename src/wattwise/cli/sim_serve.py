"""``wattwise sim serve SITE``: the twin on the wall clock behind real NUT, SNMP, Redfish and Modbus endpoints.

The twin of SITE runs in real time; :func:`start_endpoints` serves its devices on 127.0.0.1
through the real ``upsd`` (UPS, ATS), APC PowerNet SNMP agents (PDUs), Redfish services
(servers) and Modbus TCP (racklets). An optional scenario's events are played once, at their
``at_s`` from the start (its capacity overrides are applied to SITE). The endpoints file
written to ``--endpoints-out`` points at them, with credentials in a ``<file>.secrets/``
folder beside it, so ``wattwise run --site SITE --endpoints FILE`` can be tried without
hardware (``--site-out`` writes the served site, overrides applied, for ``run`` to use).
SIGTERM or SIGINT stops everything (upsd by its PID) and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from wattwise.cli.demo import Slot, play
from wattwise.errors import ConfigError, WattwiseError
from wattwise.model.clock import WallClock
from wattwise.model.loader import dump_site, load_site
from wattwise.model.site import Site
from wattwise.sim.driver import TwinDriver
from wattwise.sim.emulators.endpoints_doc import write_endpoints_file
from wattwise.sim.emulators.stack import start_endpoints
from wattwise.sim.faults import check_targets
from wattwise.sim.scenario import apply_overrides, load_scenario
from wattwise.sim.twin import Twin

logger = logging.getLogger(__name__)
console = Console(highlight=False, soft_wrap=True)


async def _keep_time(driver: TwinDriver, every_s: float = 1.0) -> None:
    """Step the twin up to the wall clock even when nobody polls (batteries drain all the same)."""
    while True:
        await driver.read()
        await asyncio.sleep(every_s)


async def _serve(site: Site, slot: Slot | None, out: Path, seed: int, poll_period_s: float) -> None:
    clock = WallClock()
    twin = Twin(site, seed=seed, start_s=clock.now_s(), record_timeline=False)
    if slot is not None:
        check_targets(twin, slot.events, slot.name)
    driver = TwinDriver(twin, clock=clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    endpoints = await start_endpoints(driver, site)
    tasks = [asyncio.create_task(_keep_time(driver))]
    try:
        write_endpoints_file(out, endpoints, site.id, poll_period_s)
        counts: dict[str, int] = {}
        for e in endpoints.endpoints:
            counts[e.protocol] = counts.get(e.protocol, 0) + 1
        console.print(
            f"wattwise sim serve: site {site.id} on the wire: "
            + ", ".join(f"{n} {p}" for p, n in sorted(counts.items()))
            + f"; endpoints file {out}"
        )
        if slot is not None:
            tasks.append(asyncio.create_task(play(twin, [slot], clock, repeat=False)))
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await endpoints.stop()
    console.print("wattwise sim serve stopped")


def _slot(scenario: Path | None, site: Site) -> tuple[Site, Slot | None]:
    if scenario is None:
        return site, None
    sc = load_scenario(scenario)
    return apply_overrides(site, sc), Slot(sc.name, sc.events, sc.duration_s)


def serve(
    site_path: Annotated[Path, typer.Argument(help="Site file")],
    endpoints_out: Annotated[Path, typer.Option("--endpoints-out", help="Where to write the endpoints file")],
    scenario: Annotated[Path | None, typer.Option(help="Scenario whose events to play once (times from start)")] = None,
    seed: Annotated[int, typer.Option(help="Twin seed")] = 0,
    poll_period_s: Annotated[float, typer.Option(min=0.1, help="Poll period written into the file, s")] = 5.0,
    site_out: Annotated[
        Path | None, typer.Option("--site-out", help="Also write the served site (scenario overrides applied)")
    ] = None,
) -> None:
    """Serve a site's twin over real protocols on 127.0.0.1 and write an endpoints file for ``wattwise run``."""
    try:
        site, slot = _slot(scenario, load_site(site_path))
        if site_out is not None:  # give this to 'wattwise run' so it plans with the batteries the twin has
            site_out.write_text(dump_site(site), encoding="utf-8")
        asyncio.run(_serve(site, slot, endpoints_out, seed, poll_period_s))
    except (ConfigError, FileNotFoundError) as err:
        console.print(str(err), style="red", markup=False)
        raise typer.Exit(2) from err
    except WattwiseError as err:
        console.print(str(err), style="red", markup=False)
        raise typer.Exit(1) from err
