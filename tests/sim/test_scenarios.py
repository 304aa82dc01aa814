"""Scenario files: validation with file and field in errors, every shipped scenario runnable, the CLI."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from wattwise.cli import app
from wattwise.errors import ConfigError
from wattwise.model.loader import load_site
from wattwise.model.site import Site
from wattwise.sim.faults import check_targets
from wattwise.sim.scenario import apply_overrides, load_scenario, parse_scenario
from wattwise.sim.twin import Twin

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
SMALL = {
    "name": "small",
    "generate": {"servers": 40, "servers_per_rack": 10, "racks_per_hall": 2, "seed": 3},
    "duration_s": 120,
    "events": [{"at_s": 30, "kind": "feed_loss", "target": "utility-a", "duration_s": 30}],
}


@lru_cache(maxsize=1)
def _two_hall() -> Site:
    return load_site(REPO / "examples" / "two-hall-site.yaml")


def test_there_is_a_scenario_per_seed_and_a_compound_one() -> None:
    names = [p.name for p in SCENARIOS]
    for prefix in ("000-", "001-", "002-", "003-", "004-", "005-compound"):
        assert any(n.startswith(prefix) for n in names), prefix


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_shipped_scenario_validates_and_names_real_devices(path: Path) -> None:
    sc = load_scenario(path)
    assert sc.events
    site = apply_overrides(_two_hall(), sc)
    check_targets(Twin(site, seed=sc.seed, record_timeline=False), sc.events, str(path))


def test_unknown_key_is_an_error_naming_file_and_field(tmp_path: Path) -> None:
    bad = dict(SMALL, events=[{"at_s": 5, "kind": "feed_loss", "target": "utility-a", "duraton_s": 3}])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert str(path) in str(err.value)
    assert "events.0.duraton_s" in str(err.value)


def test_out_of_range_value_and_unknown_target_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml: events\.0\.rate_per_s"):
        parse_scenario(
            dict(SMALL, events=[{"at_s": 1, "kind": "psu_degrade", "target": "p", "rate_per_s": -1}]), "x.yaml"
        )
    with pytest.raises(ConfigError, match="exactly one of"):
        parse_scenario({"name": "n"}, "y.yaml")
    sc = parse_scenario(dict(SMALL, events=[{"at_s": 1, "kind": "leak", "target": "rl-nowhere"}]), "z.yaml")
    from wattwise.sim.runner import build_twin

    with pytest.raises(ConfigError, match=r"z\.yaml: events\.0\.target: unknown racklet 'rl-nowhere'"):
        build_twin(sc)
    with pytest.raises(ConfigError, match="overrides: unknown device"):
        build_twin(parse_scenario(dict(SMALL, overrides={"ghost": {"capacity_w": 5}}), "o.yaml"))


def test_cli_runs_a_scenario_and_writes_json_table_and_png(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["sim", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "outcome.json").read_text())
    assert summary["outcome"]["duration_s"] == 120
    assert any("feed_loss utility-a" in e["event"] for e in summary["events"])
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "availability critical" in (out / "outcome.txt").read_text()


def test_cli_reports_a_bad_scenario_with_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(dict(SMALL, duration_s=-5)))
    result = CliRunner().invoke(app, ["sim", str(path)])
    assert result.exit_code == 2
    assert "duration_s" in result.output
