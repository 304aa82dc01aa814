"""The Grafana dashboard only queries series that the exporter really exposes."""

from __future__ import annotations

import json
import re

from tests.conftest import REPO

from wattwise.telemetry.exporter import device_series_names

HEALTH = {
    "wattwise_readings_accepted_total",
    "wattwise_readings_rejected_total",
    "wattwise_ingest_lag_seconds",
    "wattwise_store_write_seconds_sum",
    "wattwise_store_write_seconds_count",
    "wattwise_device_staleness_seconds",
}


def test_dashboard_queries_exported_series() -> None:
    dash = json.loads((REPO / "deploy" / "grafana" / "wattwise-power-chain.json").read_text())
    exported = device_series_names() | HEALTH
    used = set()
    for panel in dash["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"wattwise_[a-z_]+", target["expr"]))
    assert used, "the dashboard queries nothing"
    assert used <= exported, used - exported
    assert "wattwise_power_watts" in used
    assert "wattwise_phase_current_amperes" in used  # PDU phases: one series name, a phase label
