"""``wattwise plan``: exactly what ``armed`` would do now, on the site's twin, sending nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from wattwise.act.actuator import Verdict
from wattwise.act.base import Mode
from wattwise.control.assemble import assemble
from wattwise.control.twin_run import TwinClock
from wattwise.errors import ConfigError
from wattwise.model.loader import load_site
from wattwise.sim.driver import TwinDriver
from wattwise.sim.faults import inject
from wattwise.sim.scenario import parse_scenario
from wattwise.sim.twin import Twin
from wattwise.store.duckdb_store import DuckDBStore

console = Console()


def _plan(site_path: Path, lose: list[str], settle_s: float) -> list[Verdict]:
    site = load_site(site_path)
    twin = Twin(site, seed=0)
    events = parse_scenario(
        {
            "name": "plan",
            "generate": {"servers": 1},
            "events": [{"at_s": 0, "kind": "feed_loss", "target": f} for f in lose],
        }
    ).events
    for ev in events:
        if ev.target not in twin.index["feed"]:
            raise ConfigError(f"--lose {ev.target}: no feed of that id in {site_path}")
        inject(twin, ev)
    twin.run_for(settle_s)
    assembly = assemble(site, [TwinDriver(twin)], DuckDBStore(":memory:"), TwinClock(twin), Mode.DRY_RUN)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(assembly.controller.tick(force_decide=True))
    finally:
        loop.close()
    state = assembly.planner.last_state
    assert state is not None
    ctx = assembly.planner.context(state, assembly.controller.latest, twin.t_s, assembly.controller.last_event)
    return assembly.actuator.plan(assembly.controller.last_decisions, ctx)


def plan(
    site_path: Annotated[Path, typer.Argument(help="Site file")],
    lose: Annotated[list[str] | None, typer.Option(help="Feed to lose first (what-if), repeatable")] = None,
    settle_s: Annotated[float, typer.Option(min=0.0, help="Seconds the twin runs before planning")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print the commands armed mode would send now (on the site's twin; nothing is sent)."""
    try:
        verdicts = _plan(site_path, lose or [], settle_s)
    except ConfigError as err:
        console.print(f"[red]{err}[/red]", highlight=False)
        raise typer.Exit(1) from err
    rows = [
        {
            "at_s": v.action.not_before_s,
            "kind": str(v.action.kind),
            "target": v.action.target_id,
            "value": v.action.value,
            "verdict": str(v.phase),
            "reason": v.message or v.action.reason,
        }
        for v in verdicts
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} command(s) armed would send ({site_path})")
    for col in ("at s", "kind", "target", "value", "verdict", "reason"):
        table.add_column(col)
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:g}"
        table.add_row(f"{r['at_s']:.0f}", str(r["kind"]), str(r["target"]), value, str(r["verdict"]), str(r["reason"]))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``plan``."""
    app.command("plan")(plan)
