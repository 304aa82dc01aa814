"""Site commands: ``validate``, ``generate-site``, ``summary``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.graph import SiteGraph
from wattwise.model.loader import check_file, dump_site
from wattwise.model.problems import Severity
from wattwise.model.site import Site

console = Console()


def validate(
    sites: Annotated[list[Path], typer.Argument(help="Site files (YAML or JSON)")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Check site files and list every problem (exit 1 when any file has an error)."""
    failed = False
    report = []
    for path in sites:
        site, problems = check_file(path)
        errors = [p for p in problems if p.severity is Severity.ERROR]
        failed |= bool(errors)
        report.append({"file": str(path), "ok": not errors, "problems": [p.as_dict() for p in problems]})
        if not as_json:
            for p in problems:
                style = "red" if p.severity is Severity.ERROR else "yellow"
                # escape(): "[rule]" in a problem is text, not Rich markup.
                console.print(f"[{style}]{escape(str(p))}[/{style}]", highlight=False, soft_wrap=True)
            if site is not None:
                console.print(
                    f"[green]{escape(str(path))}: ok[/green] ({_counts(site)})", highlight=False, soft_wrap=True
                )
            else:
                console.print(
                    f"[red]{escape(str(path))}: {len(errors)} error(s)[/red]", highlight=False, soft_wrap=True
                )
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    raise typer.Exit(1 if failed else 0)


def _counts(site: Site) -> str:
    return (
        f"{len(site.feeds)} feeds, {len(site.ups)} UPS, {len(site.pdus)} PDUs, {len(site.racks)} racks, "
        f"{len(site.servers)} servers, {len(site.services)} services, {len(site.workloads)} workloads"
    )


def summary(
    site_path: Annotated[Path, typer.Argument(help="Site file")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print the power chain at nominal load (half of each server's span above idle)."""
    site, problems = check_file(site_path)
    if site is None:
        for p in problems:
            console.print(f"[red]{escape(str(p))}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    graph = SiteGraph(site)
    server_w = graph.server_idle_w + 0.5 * (graph.server_peak_w - graph.server_idle_w)
    loads = graph.chain_loads(graph.equal_share_psu_input_w(server_w))
    chain = [
        (n, k, float(w), float(c))
        for n, k, w, c in zip(loads.node_ids, loads.node_kind, loads.load_w, loads.capacity_w, strict=True)
        if k != "pdu"
    ]
    is_pdu = np.array([k == "pdu" for k in loads.node_kind], dtype=bool)
    pdu_frac = loads.load_w[is_pdu] / np.maximum(loads.capacity_w[is_pdu], 1.0)
    max_pdu_frac = float(pdu_frac.max()) if pdu_frac.size else 0.0
    if as_json:
        rows = [{"id": n, "kind": k, "load_w": w, "capacity_w": c} for n, k, w, c in chain]
        typer.echo(json.dumps({"site": site.id, "chain": rows, "max_pdu_load_frac": max_pdu_frac}))
        return
    table = Table(title=f"{site.id}: {_counts(site)}")
    for col in ("device", "kind", "load kW", "capacity kW", "load %"):
        table.add_column(col, justify="right" if col != "device" else "left")
    for n, k, w, c in chain:
        table.add_row(escape(n), k, f"{w / 1e3:.1f}", f"{c / 1e3:.1f}", f"{100 * w / c:.1f}")
    console.print(table)
    console.print(f"busiest PDU at {100 * max_pdu_frac:.1f} % of its derated capacity")


def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.json is fastest to load; .yaml)")],
    servers: Annotated[int, typer.Option(min=1, max=1_000_000)] = 10_000,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Generate a valid site of N servers (deterministic for a seed)."""
    site = generate_site(SiteSpec(servers=servers, seed=seed, site_id=f"generated-{servers}"))
    if out.suffix == ".json":
        out.write_text(site.model_dump_json(exclude_defaults=True))
    else:
        out.write_text(dump_site(site))
    console.print(f"wrote {escape(str(out))}: {_counts(site)}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the site commands."""
    app.command()(validate)
    app.command()(summary)
    app.command("generate-site")(generate)
