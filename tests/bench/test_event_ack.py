"""bench/event_ack.py's quick mode, in-process: every command sent in response to the event is acknowledged.

A 40-server site behind real upsd (NUT), SNMP, Redfish and Modbus endpoints and the orchestrator
stand-in; the controller armed on the wall clock. No latency threshold here (timings on a shared
machine are noisy); the figures are the report's business.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from tests.bench.loader import load_bench

from drivers.peers import need_nut


def _load() -> ModuleType:
    return load_bench("event_ack.py", "wattwise_bench_event_ack")


def test_quick_every_response_command_is_acked(tmp_path: Path) -> None:
    need_nut()
    bench = _load()
    args = bench.parse(["--quick", "--out", str(tmp_path / "event_ack.md")])
    results, text = bench.run(args)
    (site,) = results
    trials = site["fast"]["trials"] + site["baseline"]["trials"]
    assert len(site["fast"]["trials"]) == 3
    assert len(site["baseline"]["trials"]) == 1
    for t in trials:
        assert t["sent"] > 0, t  # a battery-only outage with short batteries must shed
        assert t["all_acked"], t
        assert t["unanswered"] == 0
        assert t["failed"] == 0
        assert t["last_ack_s"] > 0.0
    fast = site["fast"]["trials"]
    assert all(t["event"] is not None for t in fast)  # the fast path saw the event...
    assert all(t["first_decision_s"] >= t["detect_s"] for t in fast)  # ...and decided no earlier
    assert site["served"]["nut"] > 0
    assert site["served"]["redfish"] == 40
    assert "Reproduce" not in text  # the report holds the command; main() prints how to reproduce
    assert "bench/event_ack.py --quick" in text
    saved = json.loads((tmp_path / "event_ack.json").read_text())
    assert saved["sites"][0]["fast"]["trials"][0]["sent"] == fast[0]["sent"]
