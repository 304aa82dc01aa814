"""bench/backtest.py's heartbeat section on a tiny plan (a few seconds): figures, report, plot."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from tests.bench.loader import load_bench


@pytest.fixture(scope="module")
def backtest() -> ModuleType:
    return load_bench("backtest.py", "wattwise_bench_backtest")


def test_quick_section_writes_figures_and_plot(backtest: ModuleType, tmp_path: Path) -> None:
    hb = backtest.predict_heartbeat
    lines: list[str] = []
    backtest.heartbeat_section(lines, plan=hb.quick_plan(), reports=tmp_path)
    text = "\n".join(lines)
    assert lines[0] == backtest.HEARTBEAT_HEADING
    for method in hb.METHODS:
        assert f"| {method} |" in text
    assert "Goal (detector: gap + lag): **" in text
    assert (tmp_path / "prediction_heartbeat.png").stat().st_size > 10_000


def test_quick_evaluation_is_deterministic_and_detects_every_event(backtest: ModuleType) -> None:
    hb = backtest.predict_heartbeat
    plan = hb.quick_plan()
    a, b = hb.evaluate(plan), hb.evaluate(plan)
    rows_a = [t.row(m) for m, t in a.tallies.items()]
    assert rows_a == [t.row(m) for m, t in b.tallies.items()]
    shipped = a.tallies[hb.SHIPPED]
    assert shipped.events == plan.events_per_run * len(plan.test_seeds)
    assert len(shipped.delays_s) == shipped.events
    assert shipped.healthy_node_h > 0
    assert min(shipped.delays_s) >= 1.0  # 1 s samples: nothing is seen before the first one


def test_only_heartbeat_replaces_its_section_in_place(backtest: ModuleType, tmp_path: Path) -> None:
    report = tmp_path / "prediction.md"
    report.write_text("# Prediction backtest\n\n## 4. Failure\n\nkeep\n\n## 5. Heartbeat instability old\n\nold\n")
    section = [backtest.HEARTBEAT_HEADING, "", "new figures", ""]
    backtest.replace_section(report, section)
    backtest.replace_section(report, section)  # idempotent
    text = report.read_text()
    assert text.count("## 5. Heartbeat") == 1
    assert "old" not in text
    assert "keep" in text
    assert text.endswith("new figures\n")
    report.write_text(text + "\n## 6. Later\n\nlater\n")
    backtest.replace_section(report, [backtest.HEARTBEAT_HEADING, "", "newer", ""])
    text = report.read_text()
    assert "newer\n\n## 6. Later" in text
    assert "new figures" not in text
    fresh = tmp_path / "fresh.md"
    backtest.replace_section(fresh, section)
    assert fresh.read_text().startswith(backtest.HEARTBEAT_HEADING)
