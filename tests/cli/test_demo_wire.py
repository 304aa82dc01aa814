"""``wattwise demo --wire``: the demo's controller reads the twin over real upsd, SNMP, Redfish and Modbus."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import free_port
from drivers.peers import need_nut
from wattwise.cli import app
from wattwise.store.duckdb_store import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
WATTWISE = str(Path(sys.executable).parent / "wattwise")


@pytest.mark.peer("upsd")
@pytest.mark.slow
def test_demo_over_the_wire_stores_every_protocol_and_acts(tmp_path: Path) -> None:
    need_nut()
    store = tmp_path / "demo.duckdb"
    done = subprocess.run(
        [WATTWISE, "demo", "--wire", "--site", str(REPO / "examples" / "racklet-pod.yaml"), "--duration-s", "20",
         "--port", str(free_port()), "--store", str(store), "--store-every-s", "0", "--scenario", "002",
         "--lead-in-s", "5", "--scenarios-dir", str(REPO / "scenarios")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wattwise demo stopped" in done.stdout
    db = DuckDBStore(store)
    try:
        devices = {r.device_id for r in db.latest()}
        journal = db.journal(limit=100_000)
    finally:
        db.close()
    # UPS and ATS over NUT, PDUs over SNMP, servers over Redfish, racklets over Modbus; services from the twin.
    assert {"ups-h1-a", "ats-h1-a", "pdu-r00001-a", "r00001-s1", "rl-r00001", "svc-0000"} <= devices
    acked = Counter(e.kind for e in journal if e.phase == "acked")
    assert acked["psu_setpoint"] > 0, Counter((e.phase, e.kind) for e in journal)  # rectifier set-points over Modbus


def test_wire_needs_real_time(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--wire", "--speed", "10", "--store", str(tmp_path / "s.duckdb"), "--duration-s", "1"]
    )
    assert result.exit_code == 2 and "--speed 1" in result.output


def test_event_sources_keep_the_demo_period_and_bulk_telemetry_is_slower() -> None:
    from wattwise.cli.demo_wire import BULK_PERIOD_S, poll_periods
    from wattwise.sim.emulators.stack import Endpoint, Endpoints

    clients = {proto: object() for proto in ("nut", "modbus", "snmp", "redfish")}
    eps = Endpoints([Endpoint(p, f"{p}://127.0.0.1", (f"{p}-dev",), c) for p, c in clients.items()])  # type: ignore[arg-type]
    got = {p: period for (client, period) in poll_periods(eps, 2.0) for p, c in clients.items() if c is client}
    assert got == {"nut": 2.0, "modbus": 2.0, "snmp": BULK_PERIOD_S, "redfish": BULK_PERIOD_S}
    # A demo polled more slowly than the bulk period polls everything at its own period.
    assert {period for _, period in poll_periods(eps, 30.0)} == {30.0}
