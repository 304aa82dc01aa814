"""``wattwise run`` against ``wattwise sim serve``: two real processes, real upsd, SNMP, Redfish and Modbus.

The twin of a small site (UPS, ATS, PDUs, servers and a racklet) is served on loopback with a
utility loss and no generators; the controller runs in dry-run against the written endpoints
file. The store must hold readings that crossed every protocol, and the journal the dry-run
commands of the power event, with nothing sent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import free_port
from drivers.peers import need_nut
from wattwise.cli import app
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.loader import dump_site, load_site
from wattwise.sim.emulators.stack import NUT_PASSWORD, REDFISH_PASSWORD
from wattwise.store.duckdb_store import DuckDBStore

WATTWISE = str(Path(sys.executable).parent / "wattwise")
LOSS_AT_S = 12.0
RUN_S = 45.0


def _small_site(folder: Path) -> Path:
    """24 servers in 3 racks (one a racklet rack), a UPS and an ATS per side."""
    spec = SiteSpec(servers=24, servers_per_rack=6, racks_per_hall=4, racklet_racks_per_hall=1, seed=6)
    site = generate_site(spec)
    assert site.ats and site.pdus and site.servers and site.racklets
    assert [u.id for u in site.ups] == ["ups-h1-a", "ups-h1-b"] and min(u.battery_wh for u in site.ups) > 150.0
    path = folder / "small.yaml"
    path.write_text(dump_site(site))
    return path


def _scenario(folder: Path, site: Path) -> Path:
    path = folder / "loss.yaml"
    path.write_text(
        f"name: wire-loss\nsite: {site}\nduration_s: 600\n"
        # Small batteries (served and written by --site-out): a utility loss must shed.
        "overrides:\n  ups-h1-a: {battery_wh: 150}\n  ups-h1-b: {battery_wh: 150}\nevents:\n"
        "  - {at_s: 0, kind: generator_fail, target: generator-a}\n"
        "  - {at_s: 0, kind: generator_fail, target: generator-b}\n"
        f"  - {{at_s: {LOSS_AT_S}, kind: feed_loss, target: utility-a, duration_s: 300}}\n"
        f"  - {{at_s: {LOSS_AT_S}, kind: feed_loss, target: utility-b, duration_s: 300}}\n"
    )
    return path


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return proc.returncode, out


@pytest.mark.peer("upsd")
@pytest.mark.slow
def test_run_dry_run_against_sim_serve(tmp_path: Path) -> None:
    need_nut()
    site = _small_site(tmp_path)
    endpoints, store, served = tmp_path / "endpoints.yaml", tmp_path / "run.duckdb", tmp_path / "served.yaml"
    serve = subprocess.Popen(
        [WATTWISE, "sim", "serve", str(site), "--scenario", str(_scenario(tmp_path, site)),
         "--endpoints-out", str(endpoints), "--poll-period-s", "2", "--site-out", str(served)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90.0
        while not endpoints.exists():
            assert serve.poll() is None, serve.communicate()[0]
            assert time.monotonic() < deadline, "sim serve wrote no endpoints file"
            time.sleep(0.2)
        served_at = time.time()
        assert {u.battery_wh for u in load_site(served).ups} == {150.0}
        written = endpoints.read_text()
        assert NUT_PASSWORD not in written and REDFISH_PASSWORD not in written  # references only
        run = subprocess.run(
            [WATTWISE, "run", "--site", str(served), "--endpoints", str(endpoints), "--mode", "dry-run",
             "--duration-s", str(RUN_S), "--store", str(store), "--no-api", "--json", "--status-every-s", "5"],
            capture_output=True, text=True, timeout=RUN_S + 90,
        )  # fmt: skip
    finally:
        code, serve_out = _stop(serve)
    assert run.returncode == 0, run.stderr[-3000:]
    assert code == 0 and "wattwise sim serve stopped" in serve_out, serve_out
    status = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert status and status[-1]["mode"] == "dry-run"
    assert status[-1]["drivers_ever_up"] == status[-1]["drivers"] == 1 + 4 + 24 + 6  # modbus, nut, redfish, snmp
    assert status[-1]["unobserved"] == 0 and status[-1]["events"] >= 1

    db = DuckDBStore(store)
    try:
        devices = {r.device_id for r in db.latest()}
        # One device of each protocol: UPS/ATS over NUT, PDU over SNMP, server over Redfish, racklet over Modbus.
        assert {"ups-h1-a", "ats-h1-b", "pdu-r00001-a", "r00002-s3", "rl-r00001"} <= devices
        on_battery = db.latest(device_ids=["ups-h1-a"], metrics=["on_battery"])
        assert on_battery and on_battery[0].value == 1.0
        journal = db.journal(limit=100_000)
    finally:
        db.close()
    assert journal, "nothing journaled"
    phases = {e.phase for e in journal}
    assert not phases & {"sent", "acked", "failed"}, phases  # dry-run sends nothing
    sheds = [e for e in journal if e.phase == "dry-run" and e.kind in {"service_shed", "throttle"}]
    assert sheds, sorted({(e.phase, e.kind) for e in journal})
    assert all(e.t_s >= served_at + LOSS_AT_S - 1.0 for e in sheds)  # the response to the power event
    assert all(e.reason for e in sheds)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


SINGLE_RACK = Path(__file__).resolve().parents[2] / "examples" / "single-rack.yaml"


def test_config_errors_exit_2_naming_file_and_field(tmp_path: Path) -> None:
    bad = _write(
        tmp_path / "ep.yaml", "site: single-rack\nendpoints:\n  - url: snmp://127.0.0.1:1\n    device: pdu-x\n"
    )
    runner = CliRunner()
    base = ["run", "--site", str(SINGLE_RACK), "--store", str(tmp_path / "s.duckdb"), "--no-api"]
    result = runner.invoke(app, [*base, "--endpoints", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:4: error: endpoints[0].device: [unknown-device]" in result.output
    good = _write(tmp_path / "ok.yaml", "site: single-rack\nendpoints: []\n")
    result = runner.invoke(app, [*base, "--endpoints", str(good), "--mode", "yolo"])
    assert result.exit_code == 2 and "--mode must be" in result.output


def test_nothing_answering_exits_3_and_the_loop_keeps_going(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    text = (
        "site: single-rack\npoll_period_s: 0.5\ntimeout_s: 0.3\nattempts: 1\nendpoints:\n"
        f"  - url: nut://127.0.0.1:{ports[0]}\n    devices: [{{id: ups-h1-a}}]\n"
        f"  - url: redfish+http://127.0.0.1:{ports[1]}\n    device: r00001-s1\n"
    )
    ep = _write(tmp_path / "dead.yaml", text)
    args = ["run", "--site", str(SINGLE_RACK), "--endpoints", str(ep), "--store", str(tmp_path / "s.duckdb")]
    result = CliRunner().invoke(app, [*args, "--no-api", "--duration-s", "3", "--json", "--status-every-s", "1"])
    assert result.exit_code == 3, result.output
    status = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert status[-1]["drivers"] == 2 and status[-1]["drivers_ever_up"] == 0
    assert status[-1]["ticks"] >= 4  # dead devices never stopped the loop (0.5 s poll over 3 s)
    assert "unobserved" in result.output  # the warning for the devices the file leaves out
