"""``wattwise serve``: the API and dashboard for a site, answered from the site model.

Until the controller runs the API (it builds the real backend), ``serve`` uses the
``StaticBackend``: nominal loads, empty forecasts and plans, stated as such on every view.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from wattwise.api.app import create_app
from wattwise.api.auth import TokenStore
from wattwise.api.limits import ApiLimits
from wattwise.api.server import uvicorn_config
from wattwise.api.static_backend import StaticBackend
from wattwise.config import Settings
from wattwise.errors import WattwiseError
from wattwise.model.loader import load_site

logger = logging.getLogger(__name__)
console = Console(stderr=True)


def serve(
    site_path: Annotated[Path, typer.Option("--site", help="Site file (YAML or JSON)")],
    host: Annotated[str | None, typer.Option(help="Bind address (default: settings.api_host)")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default: settings.api_port)")] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="JSON file of token digests (created/updated on issue)")
    ] = None,
    animate: Annotated[bool, typer.Option(help="Vary the nominal load over time (demo)")] = False,
    cors_origin: Annotated[list[str] | None, typer.Option(help="Allow this origin cross-site (repeatable)")] = None,
    rate_per_s: Annotated[float, typer.Option(min=0.1, help="Requests per second per client")] = 20.0,
    access_log: Annotated[bool, typer.Option(help="Log each request (paths only)")] = False,
) -> None:
    """Serve the REST API, live events and the dashboard for a site."""
    settings = Settings()
    try:
        site = load_site(site_path)
        tokens = TokenStore(path=token_file)
    except WattwiseError as err:
        console.print(f"[red]{err}[/red]", highlight=False)
        raise typer.Exit(2) from err
    if settings.admin_token is None and not tokens.records():
        console.print("[yellow]no tokens: set WATTWISE_ADMIN_TOKEN (16+ characters) to log in[/yellow]")
    backend = StaticBackend(site, animate=animate)
    limits = ApiLimits(rate_per_s=rate_per_s, burst=max(60, int(3 * rate_per_s)), cors_origins=tuple(cors_origin or ()))
    app = create_app(backend, settings, tokens, limits=limits)
    bind_host, bind_port = host or settings.api_host, port or settings.api_port
    console.print(f"wattwise API and dashboard for {site.id} on http://{bind_host}:{bind_port}/", highlight=False)
    uvicorn.Server(uvicorn_config(app, bind_host, bind_port, access_log=access_log)).run()


def register(app: typer.Typer) -> None:
    """Add ``serve``."""
    app.command()(serve)
