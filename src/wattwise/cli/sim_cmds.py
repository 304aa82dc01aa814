"""``wattwise sim [run] SCENARIO``: run a scenario on the digital twin, write outcome JSON, table and PNG.

``wattwise sim serve SITE`` serves a twin over real protocols instead (see :mod:`wattwise.cli.sim_serve`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer._click.core import Context  # typer 0.29 vendors click: its Context is this one
from typer.core import TyperGroup

from wattwise.cli.sim_serve import serve
from wattwise.errors import ConfigError
from wattwise.sim.outcome import Outcome
from wattwise.sim.plot import plot_run
from wattwise.sim.runner import build_twin, run_scenario
from wattwise.sim.scenario import load_scenario

console = Console()


def _table(outcome: Outcome, title: str) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for tier, frac in outcome.availability_by_tier.items():
        table.add_row(f"availability {tier}", f"{100 * frac:.3f} %")
    rows: list[tuple[str, str]] = [
        ("dependency violations", f"{outcome.dependency_violation_s:,.0f} service·s"),
        ("priority inversions", f"{outcome.priority_inversion_s:,.0f} s"),
        ("breaker overload", f"{sum(outcome.overload_s_by_breaker.values()):,.0f} phase·s"),
        ("breaker trips", str(outcome.breaker_trips)),
        ("feed overload / trips", f"{outcome.feed_overload_s:,.0f} s / {outcome.feed_trips}"),
        ("UPS overload", f"{outcome.ups_overload_s:,.0f} UPS·s"),
        ("thermal throttle / trips", f"{outcome.thermal_throttle_s:,.0f} server·s / {outcome.thermal_trips}"),
        ("leak trips", str(outcome.leak_trips)),
        ("PSU failures / OCP trips", f"{outcome.psu_failures} / {outcome.psu_ocp_trips}"),
        ("energy from feeds", f"{outcome.energy_in_j / 3.6e6:,.1f} kWh"),
        ("IT energy", f"{outcome.energy_it_j / 3.6e6:,.1f} kWh"),
        (
            "PSU / UPS losses",
            f"{outcome.energy_loss_psu_j / 3.6e6:,.1f} / {outcome.energy_loss_ups_j / 3.6e6:,.1f} kWh",
        ),
        ("battery discharged", f"{outcome.battery_discharged_j / 3.6e6:,.1f} kWh"),
        (
            "battery left / min charge",
            f"{outcome.battery_left_wh / 1000:,.1f} kWh / {outcome.battery_min_charge_frac:.1%}",
        ),
        ("energy cost / carbon", f"{outcome.energy_cost:,.2f} / {outcome.carbon_g / 1000:,.1f} kg CO2"),
        ("migrations (aborted)", f"{outcome.migrations} ({outcome.migrations_aborted})"),
        ("migration time / energy", f"{outcome.migration_s:,.0f} s / {outcome.migration_energy_j / 3.6e6:,.2f} kWh"),
        ("disrupted workloads", str(outcome.disrupted_workloads)),
        ("server down time", f"{outcome.server_down_s:,.0f} server·s"),
        ("event-processor SLA violations", f"{outcome.sla_violation_s:,.0f} partition·s"),
        ("processor failures", str(outcome.processor_failures)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def sim(
    scenario_path: Annotated[Path, typer.Argument(help="Scenario YAML file (see scenarios/)")],
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: sim-out/<scenario>)")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override the scenario's seed")] = None,
    duration_s: Annotated[float | None, typer.Option("--duration-s", help="Override the duration, s")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON instead of a table")] = False,
) -> None:
    """Run a scenario on the digital twin; write outcome.json, the table and a PNG plot."""
    try:
        sc = load_scenario(scenario_path)
        update: dict[str, object] = {}
        if seed is not None:
            update["seed"] = seed
        if duration_s is not None:
            update["duration_s"] = duration_s
        sc = sc.model_copy(update=update)
        twin = build_twin(sc)
    except ConfigError as err:
        console.print(f"[red]{err}[/red]", highlight=False)
        raise typer.Exit(2) from err
    folder = out or Path("sim-out") / sc.name
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} s simulated"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=as_json,
    ) as bar:
        task = bar.add_task(sc.name, total=sc.duration_s)
        result = run_scenario(sc, twin=twin, progress=lambda done, total: bar.update(task, completed=done))
    folder.mkdir(parents=True, exist_ok=True)
    summary = {
        "scenario": sc.name,
        "seed": sc.seed,
        "wall_s": round(result.wall_s, 3),
        "x_realtime": round(sc.duration_s / max(result.wall_s, 1e-9), 1),
        "outcome": result.outcome.to_dict(),
        "events": [{"t_s": t, "event": e} for t, e in result.events],
    }
    (folder / "outcome.json").write_text(json.dumps(summary, indent=2))
    caps = {f.id: f.capacity_w for f in twin.site.feeds}
    png = plot_run(result, folder / "timeline.png", feed_capacity_w=caps)
    table = _table(result.outcome, f"{sc.name} — seed {sc.seed}, {sc.duration_s:,.0f} s simulated")
    with (folder / "outcome.txt").open("w") as fh:
        Console(file=fh, width=100).print(table)
    if as_json:
        typer.echo(json.dumps(summary["outcome"], indent=2))
        return
    console.print(table)
    console.print(
        f"{sc.duration_s:,.0f} s simulated in {result.wall_s:.1f} s ({summary['x_realtime']:,.0f}× real time); "
        f"wrote {folder / 'outcome.json'}, {folder / 'outcome.txt'}, {png}",
        highlight=False,
    )


class _RunByDefault(TyperGroup):
    """``wattwise sim SCENARIO`` stays ``wattwise sim run SCENARIO`` (the command predates ``serve``)."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        """Insert ``run`` when the first word is not a subcommand or a help flag."""
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def register(app: typer.Typer) -> None:
    """Add the ``sim`` group: ``sim run SCENARIO`` (the default) and ``sim serve SITE``."""
    group = typer.Typer(cls=_RunByDefault, help="Run a twin scenario, or serve a twin over real protocols.")
    group.command("run")(sim)
    group.command("serve")(serve)
    app.add_typer(group, name="sim")
