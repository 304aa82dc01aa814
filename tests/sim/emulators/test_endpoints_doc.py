"""The endpoints file ``sim serve`` writes loads back against its site, with secrets only by reference."""

from __future__ import annotations

import stat
import time
from pathlib import Path

from wattwise.drivers.endpoint_rules import load_endpoints
from wattwise.model.loader import load_site
from wattwise.sim.driver import TwinDriver
from wattwise.sim.emulators.endpoints_doc import write_endpoints_file
from wattwise.sim.emulators.stack import REDFISH_PASSWORD, SNMP_COMMUNITY, start_endpoints
from wattwise.sim.twin import Twin

REPO = Path(__file__).resolve().parents[3]


async def test_written_file_loads_and_maps_every_served_device(tmp_path: Path) -> None:
    site = load_site(REPO / "examples" / "racklet-pod.yaml")
    twin = Twin(site, seed=0, start_s=time.time(), record_timeline=False)
    # NUT needs the real upsd: tests/cli/test_run.py covers it; here SNMP, Redfish and Modbus.
    endpoints = await start_endpoints(TwinDriver(twin), site, protocols=("snmp", "redfish", "modbus"))
    try:
        path = write_endpoints_file(tmp_path / "ep.yaml", endpoints, site.id, poll_period_s=3.0)
        text = path.read_text()
        assert REDFISH_PASSWORD not in text and f": {SNMP_COMMUNITY}" not in text
        secrets = tmp_path / "ep.yaml.secrets"
        assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in secrets.iterdir())
        loaded = load_endpoints(path, site, environ={})
    finally:
        await endpoints.stop()
    assert loaded.spec.poll_period_s == 3.0
    assert set(loaded.unobserved) == {u.id for u in site.ups} | {a.id for a in site.ats}  # NUT not started
    served = set(loaded.served)
    assert {s.id for s in site.servers} | {p.id for p in site.pdus} | {r.id for r in site.racklets} <= served
    assert {o.id for p in site.pdus for o in p.outlets} <= served
    assert {p.id for r in site.racklets for p in r.power.psus} <= served
    assert set(endpoints.urls()) <= served
