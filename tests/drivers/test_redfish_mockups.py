"""RedfishDriver replays every DMTF mockup through httpx.MockTransport (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from conftest import DATASETS, need
from wattwise.drivers.redfish import RedfishDriver
from wattwise.drivers.redfish_client import RedfishEndpoint
from wattwise.model.metrics import METRICS
from wattwise.model.values import Action, ActionKind

MOCKUPS = DATASETS / "redfish_mockups" / "dmtf"


def mockup_transport(root: Path, log: list[tuple[str, str, object]]) -> httpx.MockTransport:
    """Serve a DMTF short-form mockup tree; record writes; PATCH/POST answer 204."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/redfish/v1").strip("/")
        if request.method in ("PATCH", "POST"):
            log.append((request.method, request.url.path, json.loads(request.content or b"{}")))
            return httpx.Response(204)
        file = root / path / "index.json"
        if not file.is_file():
            return httpx.Response(404, json={"error": {"message": "not found"}})
        return httpx.Response(200, content=file.read_bytes(), headers={"Content-Type": "application/json"})

    return httpx.MockTransport(handler)


def mockups() -> list[Path]:
    return sorted(p for p in MOCKUPS.iterdir() if (p / "index.json").is_file()) if MOCKUPS.is_dir() else []


async def _read(name: str) -> tuple[RedfishDriver, dict[tuple[str, str], float], list[tuple[str, str, object]]]:
    need(MOCKUPS.is_dir(), f"Redfish mockups not found at {MOCKUPS}")
    log: list[tuple[str, str, object]] = []
    driver = RedfishDriver(
        "dev",
        RedfishEndpoint("http://bmc.test", "u", "p", auth="basic"),
        transport=mockup_transport(MOCKUPS / name, log),
    )
    readings = await driver.read()
    assert all(r.metric in METRICS for r in readings)
    values = {(r.device_id, r.metric): r.value for r in readings if not r.tags}
    return driver, values, log


@pytest.mark.parametrize("name", [p.name for p in mockups()] or ["public-rackmount1"])
async def test_every_mockup_parses(name: str) -> None:
    driver, values, _ = await _read(name)
    assert driver.plan is not None
    if name != "public-telemetry":
        assert values, f"{name} yielded no readings"
    await driver.close()


async def test_rackmount_psus_limit_and_actions() -> None:
    driver, values, log = await _read("public-rackmount1")
    assert values[("dev/Bay1", "capacity_w")] == 400.0
    assert values[("dev/Bay1", "input_power_w")] == pytest.approx(937.4)
    assert values[("dev/Bay2", "available")] == 0.0  # Bay2 is Absent
    assert values[("dev", "power_cap_w")] == 500.0
    assert values[("dev", "power_w")] == 344.0
    result = await driver.apply(Action(kind=ActionKind.POWER_CAP, target_id="dev", value=420.0))
    assert result.ok
    assert log[-1] == ("PATCH", "/redfish/v1/Chassis/1U/Controls/PowerLimit", {"SetPoint": 420.0})
    await driver.close()


async def test_pdu_outlets_and_power_control() -> None:
    driver, values, log = await _read("public-pdu")
    assert values[("dev/A1", "outlet_on")] == 1.0
    assert values[("dev/A1", "power_w")] == pytest.approx(197.4)
    assert values[("dev", "power_w")] == 6438.0
    assert values[("dev", "energy_j")] == pytest.approx(56438 * 3.6e6)
    result = await driver.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="dev/A1"))
    assert result.ok
    assert log[-1][0] == "POST"
    assert log[-1][2] == {"PowerState": "Off"}
    refused = await driver.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="dev/nope"))
    assert not refused.ok
    await driver.close()


async def test_cooling_unit_leaks_and_environment() -> None:
    driver, values, _ = await _read("public-cooling-unit")
    assert values[("dev", "temperature_c")] == 24.0
    assert values[("dev", "humidity_frac")] == pytest.approx(0.26)
    await driver.close()


async def test_slow_resources_are_polled_less_and_after_writes() -> None:
    need(MOCKUPS.is_dir(), f"Redfish mockups not found at {MOCKUPS}")
    gets: list[str] = []
    log: list[tuple[str, str, object]] = []
    inner = mockup_transport(MOCKUPS / "public-rackmount1", log)

    def counting(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            gets.append(request.url.path)
        return inner.handle_request(request)

    driver = RedfishDriver(
        "dev",
        RedfishEndpoint("http://bmc.test", "u", "p", auth="basic"),
        transport=httpx.MockTransport(counting),
        slow_every=5,
    )
    await driver.read()
    full = len(gets)
    gets.clear()
    second = {(r.device_id, r.metric) for r in await driver.read()}
    assert 0 < len(gets) < full - 2  # PSU and control resources skipped ...
    assert ("dev/Bay1", "capacity_w") in second  # ... but their last values still reported
    gets.clear()
    assert (await driver.apply(Action(kind=ActionKind.POWER_CAP, target_id="dev", value=420.0))).ok
    await driver.read()
    assert "/redfish/v1/Chassis/1U/Controls/PowerLimit" in gets  # re-read right after the write
    await driver.close()
