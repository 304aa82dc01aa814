from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from wattwise.cli import app
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.loader import dump_site

LOSE_ALL = ["--lose", "utility-a", "--lose", "utility-b", "--lose", "generator-a", "--lose", "generator-b"]


def _weak_site(tmp_path: Path) -> Path:
    site = generate_site(SiteSpec(servers=40, servers_per_rack=10, racks_per_hall=4, racklet_racks_per_hall=0, seed=6))
    site = site.model_copy(update={"ups": tuple(u.model_copy(update={"battery_wh": 300.0}) for u in site.ups)})
    path = tmp_path / "weak.yaml"
    path.write_text(dump_site(site))
    return path


def test_plan_lists_what_armed_would_send_after_losing_every_source(tmp_path: Path) -> None:
    site = _weak_site(tmp_path)
    calm = CliRunner().invoke(app, ["plan", str(site), "--json"])
    assert calm.exit_code == 0, calm.output
    # A healthy site: only load sharing's set-points (least conversion loss), nothing shed.
    assert {r["kind"] for r in json.loads(calm.output)} <= {"psu_setpoint"}
    out = CliRunner().invoke(app, ["plan", str(site), *LOSE_ALL, "--settle-s", "10", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    sheds = [r for r in rows if r["kind"] == "service_shed"]
    assert sheds
    assert all(r["reason"] for r in rows)
    assert {r["verdict"] for r in rows} <= {"sent", "refused", "pending"}


def test_plan_names_an_unknown_feed(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["plan", str(_weak_site(tmp_path)), "--lose", "utility-z"])
    assert out.exit_code == 1
    assert "utility-z" in out.output
