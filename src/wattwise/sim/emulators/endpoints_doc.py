"""Write an endpoints file for what :func:`start_endpoints` started (``wattwise sim serve``).

The file points ``wattwise run`` at the twin's real endpoints exactly as it would point at the
floor's: one NUT entry per upsd with its devices and NUT names, one SNMP, Redfish or Modbus
entry per device with its id mapping, and credentials as references to files in a secrets
folder beside it (mode 0600), never inline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from wattwise.drivers.modbus import ModbusRackletDriver
from wattwise.drivers.nut import NutDriver
from wattwise.drivers.redfish import RedfishDriver
from wattwise.drivers.snmp import SnmpPduDriver
from wattwise.sim.emulators.stack import NUT_PASSWORD, REDFISH_PASSWORD, SNMP_COMMUNITY, Endpoints

SECRETS = {"nut-password": NUT_PASSWORD, "redfish-password": REDFISH_PASSWORD, "snmp-community": SNMP_COMMUNITY}


def write_secrets(folder: Path) -> dict[str, str]:
    """Write the emulators' credentials, one file each (0600); name → path relative to ``folder.parent``."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    out = {}
    for name, value in SECRETS.items():
        path = folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
        out[name] = str(path.relative_to(folder.parent))
    return out


def _entry(client: object, url: str, secrets: dict[str, str]) -> dict[str, Any] | None:
    if isinstance(client, SnmpPduDriver):
        outlets = {n: oid for n, oid in client.outlet_ids.items()}
        return {
            "url": url,
            "device": client.device_id,
            "community": {"file": secrets["snmp-community"]},
            **_opt(outlets),
        }
    if isinstance(client, RedfishDriver):
        ep = client.endpoint
        psus = {k: v for k, v in client.id_map.items() if "/PowerSupplies/" in k}
        redfish_outlets = {k: v for k, v in client.id_map.items() if k not in psus}
        entry: dict[str, Any] = {"url": f"redfish+{url}", "device": client.device_id}
        entry.update({"username": ep.username, "password": {"file": secrets["redfish-password"]}})
        if not ep.verify_tls:
            entry["tls"] = {"verify": False}
        entry.update({k: v for k, v in (("psus", psus), ("outlets", redfish_outlets)) if v})
        return entry
    if isinstance(client, ModbusRackletDriver):
        return {"url": url, "device": client.ids.power_id, "psus": list(client.ids.psu_ids)}
    return None


def _opt(outlets: dict[int, str]) -> dict[str, Any]:
    return {"outlets": outlets} if outlets else {}


def endpoints_document(
    endpoints: Endpoints, site_id: str, secrets: dict[str, str], poll_period_s: float = 5.0
) -> dict[str, Any]:
    """The endpoints file (as data) for ``endpoints``."""
    nut: dict[str, dict[str, Any]] = {}
    entries: list[dict[str, Any]] = []
    for e in endpoints.endpoints:
        client = e.client
        if isinstance(client, NutDriver):
            ep = client.endpoint
            group = nut.setdefault(ep.url, {"url": ep.url, "username": ep.username, "devices": []})
            group["password"] = {"file": secrets["nut-password"]}
            device: dict[str, Any] = {"id": client.device_id, "ups": client.ups_name}
            if client.parser.outlet_ids:
                device["outlets"] = dict(client.parser.outlet_ids)
            group["devices"].append(device)
            continue
        entry = _entry(client, e.url, secrets)
        if entry is not None:
            entries.append(entry)
    doc: dict[str, Any] = {"site": site_id, "poll_period_s": poll_period_s, "timeout_s": 2.0, "attempts": 2}
    doc["endpoints"] = [*nut.values(), *entries]
    return doc


def write_endpoints_file(path: Path, endpoints: Endpoints, site_id: str, poll_period_s: float = 5.0) -> Path:
    """Write the endpoints file and its secrets folder (``<name>.secrets/``); returns the file."""
    secrets = write_secrets(path.parent / f"{path.name}.secrets")
    doc = endpoints_document(endpoints, site_id, secrets, poll_period_s)
    header = f"# Endpoints of site {site_id} served by 'wattwise sim serve' (the twin on loopback).\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    tmp.replace(path)  # readers never see a half-written file
    return path
