"""Client commands over the REST API: ``wattwise status`` and ``wattwise journal``.

Exit codes: 0 ok; 1 the controller is not running or its data is stale (``status`` only);
3 the API cannot be reached; 4 the token was refused (401/403); 5 any other API error.
The token comes from ``--token`` or ``WATTWISE_API_TOKEN`` (safer: not shown by ``ps``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

EXIT_NOT_RUNNING = 1
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_API = 5

UrlOpt = Annotated[str, typer.Option("--url", envvar="WATTWISE_API_URL", help="API base URL")]
TokenOpt = Annotated[
    str, typer.Option("--token", envvar="WATTWISE_API_TOKEN", help="API token (or WATTWISE_API_TOKEN)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _get(url: str, token: str, path: str, params: dict[str, Any] | None = None) -> Any:
    """GET a JSON document or exit with the documented code."""
    try:
        with httpx.Client(base_url=url, timeout=10.0, headers={"Authorization": f"Bearer {token}"}) as client:
            response = client.get(path, params=params)
    except httpx.HTTPError as err:
        err_console.print(f"[red]cannot reach {url}: {type(err).__name__}[/red]", highlight=False)
        raise typer.Exit(EXIT_UNREACHABLE) from err
    if response.status_code in (401, 403):
        err_console.print(f"[red]refused ({response.status_code}): {_detail(response)}[/red]", highlight=False)
        raise typer.Exit(EXIT_AUTH)
    if response.status_code != 200:
        err_console.print(f"[red]API error {response.status_code}: {_detail(response)}[/red]", highlight=False)
        raise typer.Exit(EXIT_API)
    return response.json()


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail") or body.get("title") or "") if isinstance(body, dict) else ""


def _pct(frac: float) -> str:
    return f"{100 * frac:.1f} %"


def status(url: UrlOpt = "http://127.0.0.1:8640", token: TokenOpt = "", as_json: JsonOpt = False) -> None:
    """Controller status and power-chain headroom (exit 1 when the controller is not running or stale)."""
    st = _get(url, token, "/api/v1/status")
    head = _get(url, token, "/api/v1/headroom", {"max_pdus": 5})
    stale = st.get("staleness_s") is not None and st["staleness_s"] > 60.0
    code = EXIT_NOT_RUNNING if (not st["running"] or stale) else 0
    if as_json:
        typer.echo(json.dumps({"status": st, "headroom": head}, indent=2))
        raise typer.Exit(code)
    running = "[green]running[/green]" if st["running"] else "[yellow]not running[/yellow]"
    console.print(f"site {st['site_id']}: controller {running}, mode [bold]{st['mode']}[/bold]", highlight=False)
    leader = st["leader"] or "none"
    staleness = "n/a" if st["staleness_s"] is None else f"{st['staleness_s']:.1f} s"
    rejected = sum(r["count"] for r in st["rejected_readings"])
    console.print(
        f"leader {leader}; staleness {staleness}; rejected readings {rejected}; "
        f"pending actions {st['pending_actions']}; in maintenance {len(st['maintenance'])}",
        highlight=False,
    )
    if st["message"]:
        console.print(f"[dim]{st['message']}[/dim]", highlight=False)
    table = Table(title=f"headroom ({head['source']}), A/B imbalance {_pct(head['imbalance_frac'])}")
    for col in ("device", "kind", "side", "load kW", "capacity kW", "headroom kW", "load"):
        table.add_column(col, justify="left" if col in ("device", "kind", "side") else "right")
    for n in head["nodes"]:
        style = "red" if n["load_frac"] > 1.0 else "yellow" if n["load_frac"] > 0.8 else ""
        table.add_row(
            n["id"],
            n["kind"],
            n["side"] or "",
            f"{n['load_w'] / 1e3:.1f}",
            f"{n['capacity_w'] / 1e3:.1f}",
            f"{n['headroom_w'] / 1e3:.1f}",
            _pct(n["load_frac"]),
            style=style,
        )
    console.print(table)
    raise typer.Exit(code)


def journal(
    url: UrlOpt = "http://127.0.0.1:8640",
    token: TokenOpt = "",
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Entries to show")] = 50,
) -> None:
    """The action journal, newest first."""
    page = _get(url, token, "/api/v1/journal", {"limit": limit})
    if as_json:
        typer.echo(json.dumps(page, indent=2))
        return
    table = Table(title=f"journal: {len(page['items'])} of {page['total']} entries")
    for col in ("#", "time (UTC)", "who", "role", "what", "target", "detail"):
        table.add_column(col, overflow="fold")
    for e in page["items"]:
        table.add_row(
            str(e["seq"]), e["at"][:19].replace("T", " "), e["actor"], e["role"], e["kind"], e["target"], e["detail"]
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``status`` and ``journal``."""
    app.command()(status)
    app.command()(journal)
