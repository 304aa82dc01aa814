"""``wattwise status`` / ``journal`` against a live server: output, --json, exit codes."""

from __future__ import annotations

import json

import httpx
import typer
from tests.api.conftest import Live
from tests.conftest import free_port
from typer.testing import CliRunner

from wattwise.cli import api_client

app = typer.Typer()
api_client.register(app)
runner = CliRunner()


def test_status_table_and_exit_code(live: Live) -> None:
    r = runner.invoke(app, ["status", "--url", live.url, "--token", live.token["viewer"]])
    assert r.exit_code == api_client.EXIT_NOT_RUNNING, r.output  # StaticBackend: no controller
    assert "controller not running" in r.output and "utility-a" in r.output and "imbalance" in r.output


def test_status_json_and_token_from_env(live: Live) -> None:
    r = runner.invoke(app, ["status", "--url", live.url, "--json"], env={"WATTWISE_API_TOKEN": live.token["viewer"]})
    doc = json.loads(r.stdout)
    assert doc["status"]["site_id"] == "single-rack" and doc["headroom"]["pdus_total"] == 2


def test_refused_and_unreachable(live: Live) -> None:
    bad = runner.invoke(app, ["status", "--url", live.url, "--token", "ww_wrong-000000000000000"])
    assert bad.exit_code == api_client.EXIT_AUTH and "refused (401)" in bad.output
    down = runner.invoke(app, ["journal", "--url", f"http://127.0.0.1:{free_port()}", "--token", "x"])
    assert down.exit_code == api_client.EXIT_UNREACHABLE


def test_journal_lists_who_did_what(live: Live) -> None:
    runner.invoke(app, ["status", "--url", live.url, "--token", live.token["viewer"]])
    httpx.post(
        f"{live.url}/api/v1/devices/pdu-r00001-b/maintenance",
        json={"on": True, "note": "breaker test"},
        headers={"Authorization": f"Bearer {live.token['operator']}"},
        timeout=10.0,
    )
    r = runner.invoke(app, ["journal", "--url", live.url, "--token", live.token["viewer"], "--json", "--limit", "5"])
    assert r.exit_code == 0
    newest = json.loads(r.stdout)["items"][0]
    assert (newest["actor"], newest["kind"], newest["target"]) == ("operator-user", "maintenance", "pdu-r00001-b")
    table = runner.invoke(app, ["journal", "--url", live.url, "--token", live.token["viewer"]], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "operator-user" in table.output and "maintenance" in table.output


def test_serve_command_serves_api_and_dashboard(tmp_path: object) -> None:
    import os
    import subprocess
    import sys
    import time

    from tests.api.conftest import DEMO_SITE

    port = free_port()
    admin = "serve-test-admin-token-0123"
    cmd = [sys.executable, "-c", "from wattwise.cli import main; main()", "serve", "--site", str(DEMO_SITE)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        env={**os.environ, "WATTWISE_ADMIN_TOKEN": admin},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        me = httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {admin}"}, timeout=5.0)
        page = httpx.get(f"{url}/", timeout=5.0)
        assert me.json() == {"name": "admin", "role": "admin"}
        assert "<title>wattwise</title>" in page.text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert admin.encode() not in err  # the token is never echoed
