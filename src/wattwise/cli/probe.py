"""``wattwise probe URL``: what a device exposes, as a first-contact tool for operators.

URLs: ``nut://[user:pass@]host[:3493][/ups]``, ``redfish+https://[user:pass@]host[:port]``
(``redfish+http://`` for lab gear), ``snmp://[community@]host[:161]`` (v3:
``snmp://user@host?auth=KEY&priv=KEY&context=NAME``) and ``modbus://host[:502]`` (the wattwise
racklet register map). Exit status 1 when the device cannot be reached, 2 on bad credentials.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Annotated, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import typer

from wattwise.drivers.modbus import ModbusRackletDriver, RackletIds
from wattwise.drivers.nut import NutDriver
from wattwise.drivers.nut_client import NutClient, NutEndpoint
from wattwise.drivers.redfish import RedfishDriver
from wattwise.drivers.redfish_client import RedfishEndpoint
from wattwise.drivers.retry import RetryPolicy
from wattwise.drivers.snmp import SnmpPduDriver, SnmpTarget
from wattwise.errors import DeviceAuthError, DriverError
from wattwise.model.values import Reading

_SEEN: ContextVar[list[Reading] | None] = ContextVar("probe_readings", default=None)
"""Readings a probe printed, for ``--json`` (set by the command, None otherwise)."""


def _reading_line(r: Reading) -> str:
    tags = ",".join(f"{k}={v}" for k, v in r.tags)
    return f"  {r.device_id:<28} {r.metric:<22} {r.value:>14.4g}" + (f"  [{tags}]" if tags else "")


def _readings(readings: list[Reading]) -> list[str]:
    ordered = sorted(readings, key=lambda r: (r.device_id, r.metric, r.tags))
    seen = _SEEN.get()
    if seen is not None:
        seen.extend(ordered)
    return [_reading_line(r) for r in ordered]


async def _probe_json(url: str, timeout_s: float, insecure: bool) -> dict[str, object]:
    seen: list[Reading] = []
    _SEEN.set(seen)
    lines = await probe(url, timeout_s, insecure)
    printed = {_reading_line(r) for r in seen}
    return {
        "url": url,
        "description": [line for line in lines if line not in printed],
        "readings": [
            {"device_id": r.device_id, "metric": r.metric, "value": r.value, "t_s": r.t_s, "tags": dict(r.tags)}
            for r in seen
        ],
    }


async def _probe_nut(url: str, retry: RetryPolicy) -> list[str]:
    parts = urlsplit(url)
    endpoint = NutEndpoint(
        parts.hostname or "127.0.0.1",
        parts.port or 3493,
        unquote(parts.username or "") or None,
        unquote(parts.password or "") or None,
    )
    client = NutClient(endpoint)
    try:
        upses = await client.list_ups()
        wanted = [parts.path.strip("/")] if parts.path.strip("/") else list(upses)
        lines = [f"upsd {endpoint.url}: {len(upses)} device(s): {', '.join(upses)}"]
        for ups in wanted:
            variables = await client.list_var(ups)
            lines.append(
                f"[{ups}] {upses.get(ups, '')}  {variables.get('device.mfr', '')} "
                f"{variables.get('device.model', '')} type={variables.get('device.type', '?')}"
            )
            lines.append(f"  commands: {' '.join(await client.list_cmd(ups)) or '-'}")
            lines.append(f"  writable: {' '.join(await client.list_rw(ups)) or '-'}")
            driver = NutDriver(ups, ups, endpoint, retry=retry)
            lines += _readings(await driver.read())
            lines += [f"  unparsable {p.var} = {p.raw!r}: {p.why}" for p in driver.last_problems]
            await driver.close()
        return lines
    finally:
        await client.close()


async def _probe_redfish(url: str, retry: RetryPolicy, insecure: bool) -> list[str]:
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == "redfish+https" else "http"
    base = f"{scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    auth: Literal["session", "basic"] = "session" if user else "basic"
    driver = RedfishDriver(
        parts.hostname or "device", RedfishEndpoint(base, user, password, auth, not insecure), retry=retry
    )
    try:
        plan = await driver.discover()
        kinds: dict[str, int] = {}
        for leaf in plan.leaves:
            kinds[leaf.kind] = kinds.get(leaf.kind, 0) + 1
        lines = [
            f"Redfish {base}: {len(plan.leaves)} resources polled: "
            + ", ".join(f"{k}×{n}" for k, n in sorted(kinds.items()))
        ]
        lines += [f"  outlet {oid}: PowerControl {target}" for oid, target in sorted(plan.outlet_targets.items())]
        lines += [f"  PSU {pid}: set-point control {c}" for pid, c in sorted(plan.psu_controls.items())]
        if plan.limit_control or plan.legacy_power:
            lines.append(f"  power limit: {plan.limit_control or plan.legacy_power}")
        lines += [f"  unresolved link {p}" for p in plan.problems]
        return lines + _readings(await driver.read())
    finally:
        await driver.close()


async def _probe_snmp(url: str, retry: RetryPolicy) -> list[str]:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    user = unquote(parts.username or "")
    if "auth" in query:
        target = SnmpTarget(
            parts.hostname or "127.0.0.1",
            parts.port or 161,
            v3_user=user,
            v3_auth_key=query["auth"],
            v3_priv_key=query.get("priv", ""),
            v3_context=query.get("context", ""),
        )
    else:
        target = SnmpTarget(parts.hostname or "127.0.0.1", parts.port or 161, community=user or "public")
    driver = SnmpPduDriver(parts.hostname or "pdu", target, retry=retry)
    try:
        ident = await driver.identify()
        lines = [f"SNMP {target.url}: APC PowerNet rPDU " + " ".join(f"{k}={v}" for k, v in sorted(ident.items()))]
        return lines + _readings(await driver.read())
    finally:
        await driver.close()


async def _probe_modbus(url: str, retry: RetryPolicy) -> list[str]:
    parts = urlsplit(url)
    driver = ModbusRackletDriver(
        RackletIds("power", (), "cooling"), parts.hostname or "127.0.0.1", parts.port or 502, retry=retry
    )
    try:
        readings = await driver.read()
        lines = [f"Modbus {driver.url}: wattwise racklet map v1 (unit 1 power, unit 2 cooling)"]
        lines.append(f"  alarms: {', '.join(driver.last_alarms) or 'none'}")
        return lines + _readings(readings)
    finally:
        await driver.close()


async def probe(url: str, timeout_s: float = 3.0, insecure: bool = False) -> list[str]:
    """Describe the device at ``url``.

    Raises:
        DriverError: The device is unreachable, refused us, or answered garbage.
        ValueError: Unknown URL scheme.
    """
    retry = RetryPolicy(timeout_s=timeout_s, attempts=1)
    scheme = urlsplit(url).scheme
    probes: dict[str, Callable[[], Awaitable[list[str]]]] = {
        "nut": lambda: _probe_nut(url, retry),
        "redfish+https": lambda: _probe_redfish(url, retry, insecure),
        "redfish+http": lambda: _probe_redfish(url, retry, insecure),
        "snmp": lambda: _probe_snmp(url, retry),
        "modbus": lambda: _probe_modbus(url, retry),
    }
    if scheme not in probes:
        raise ValueError(f"unknown scheme {scheme!r}: use one of {', '.join(probes)}")
    return await probes[scheme]()


def probe_cmd(
    url: Annotated[str, typer.Argument(help="nut://, redfish+https://, redfish+http://, snmp:// or modbus:// URL")],
    timeout_s: Annotated[float, typer.Option("--timeout", help="Seconds per request")] = 3.0,
    insecure: Annotated[bool, typer.Option("--insecure", help="Do not verify TLS certificates")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Description lines and readings as JSON")] = False,
) -> None:
    """Print what a device exposes (identity, commands, resources, readings in SI units)."""
    try:
        if as_json:
            typer.echo(json.dumps(asyncio.run(_probe_json(url, timeout_s, insecure)), indent=2))
            return
        lines = asyncio.run(probe(url, timeout_s, insecure))
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    except DeviceAuthError as err:
        typer.echo(f"credentials refused: {err}", err=True)
        raise typer.Exit(2) from err
    except DriverError as err:
        typer.echo(f"cannot probe: {err}", err=True)
        raise typer.Exit(1) from err
    for line in lines:
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add ``probe`` to the CLI."""
    app.command("probe")(probe_cmd)
