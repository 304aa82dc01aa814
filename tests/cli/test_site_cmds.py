"""`wattwise validate`, `summary` and `generate-site` through the real Typer app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import EXAMPLES
from tests.model.site_base_text import BASE, edit
from typer.testing import CliRunner

from wattwise.cli import app

runner = CliRunner()
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_validate_every_example_exits_0(path: Path) -> None:
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: ok" in result.output


def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    text = edit({29: "  input: ups-z", 31: "  breaker_a: .nan", 71: "  depends_on: [db, web]", 68: "  tier: low"})
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_broken_file_exits_1_listing_every_problem(tmp_path: Path) -> None:
    path = broken(tmp_path)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    out = result.output
    assert f"{path}:29: error: pdus[0].input: [dangling-ref] input 'ups-z' does not exist" in out
    assert f"{path}:31: error: pdus[0].breaker_a: [out-of-range]" in out
    assert f"{path}:71: error: services[1].depends_on: [dependency-cycle] dependency cycle: web -> web" in out
    assert f"{path}:71: warning: services[1].depends_on[0]: [depends-on-lower-tier]" in out
    assert f"{path}: 3 error(s)" in out


def test_validate_json_shape(tmp_path: Path) -> None:
    path = broken(tmp_path)
    result = runner.invoke(app, ["validate", "--json", str(EXAMPLE_FILES[0]), str(path)])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert [r["file"] for r in report] == [str(EXAMPLE_FILES[0]), str(path)]
    assert [r["ok"] for r in report] == [True, False]
    assert report[0]["problems"] == []
    problems = report[1]["problems"]
    assert {tuple(sorted(p)) for p in problems} == {("file", "line", "message", "path", "rule", "severity")}
    assert sorted((p["rule"], p["path"], p["line"], p["severity"]) for p in problems) == [
        ("dangling-ref", "pdus[0].input", 29, "error"),
        ("dependency-cycle", "services[1].depends_on", 71, "error"),
        ("depends-on-lower-tier", "services[1].depends_on[0]", 71, "warning"),
        ("out-of-range", "pdus[0].breaker_a", 31, "error"),
    ]


def test_warnings_alone_exit_0(tmp_path: Path) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text(edit({68: "  tier: low"}), encoding="utf-8")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "[depends-on-lower-tier]" in result.output
    assert f"{path}: ok" in result.output


def test_validate_unusable_files(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    result = runner.invoke(app, ["validate", "--json", str(tmp_path / "empty.yaml"), str(tmp_path / "missing.yaml")])
    assert result.exit_code == 1
    rules = [[p["rule"] for p in r["problems"]] for r in json.loads(result.output)]
    assert rules == [["empty-file"], ["unreadable"]]


def test_summary_human_and_json(tmp_path: Path) -> None:
    path = tmp_path / "base.yaml"
    path.write_text(BASE, encoding="utf-8")
    result = runner.invoke(app, ["summary", str(path)])
    assert result.exit_code == 0, result.output
    assert "ups-a" in result.output and "busiest PDU" in result.output
    result = runner.invoke(app, ["summary", "--json", str(path)])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["site"] == "t"
    assert [row["id"] for row in data["chain"]] == ["feed-a", "feed-b", "gen-a", "ats-a", "ups-a", "ups-b"]
    # Nominal load = idle + half the span: s1 250 W (A and B halves), s2 175 W on the racklet.
    by_id = {row["id"]: row["load_w"] for row in data["chain"]}
    assert by_id["ups-b"] == pytest.approx(125 + 87.5)
    assert by_id["feed-a"] == pytest.approx(125 + 87.5)
    assert 0 < data["max_pdu_load_frac"] < 1
    assert runner.invoke(app, ["summary", str(broken(tmp_path))]).exit_code == 1


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_generate_site_writes_a_valid_site(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"gen{suffix}"
    result = runner.invoke(app, ["generate-site", "--servers", "120", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "120 servers" in result.output
    if suffix == ".json":
        assert out.read_text(encoding="utf-8").startswith("{")
    result = runner.invoke(app, ["validate", str(out)])
    assert result.exit_code == 0, result.output
