"""HA commands: ``leader`` (who leads a power domain now, through etcd or PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from wattwise.control.leader import EtcdLeaderElector, LeaderElector, PostgresLeaderElector
from wattwise.errors import LeadershipLost


async def _who(elector: LeaderElector) -> str | None:
    try:
        return await elector.leader()
    finally:
        await elector.close()


def leader(
    domains: Annotated[list[str], typer.Argument(help="Power domains")],
    etcd: Annotated[str | None, typer.Option(help="etcd client URL, e.g. http://127.0.0.1:2379")] = None,
    postgres: Annotated[str | None, typer.Option(help="PostgreSQL DSN (advisory-lock back-end)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Show which controller leads each power domain (exit 2 when the back-end cannot be read)."""
    if (etcd is None) == (postgres is None):
        typer.echo("give exactly one of --etcd or --postgres", err=True)
        raise typer.Exit(2)
    result: dict[str, str | None] = {}
    for domain in domains:
        elector: LeaderElector
        if etcd is not None:
            elector = EtcdLeaderElector(etcd, domain, "wattwise-cli")
        else:
            assert postgres is not None
            elector = PostgresLeaderElector(postgres, domain, "wattwise-cli")
        try:
            result[domain] = asyncio.run(_who(elector))
        except LeadershipLost as err:
            typer.echo(f"{domain}: cannot read the leader: {err}", err=True)
            raise typer.Exit(2) from err
    if as_json:
        typer.echo(json.dumps(result))
        return
    for domain, name in result.items():
        typer.echo(f"{domain}: {name if name is not None else 'no leader'}")


def register(app: typer.Typer) -> None:
    """Add the HA commands."""
    app.command()(leader)
