"""RedfishDriver replays every DMTF mockup through httpx.MockTransport (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from conftest import DATASETS, need
from wattwise.drivers.redfish import REWALK_AFTER, RedfishDriver
from wattwise.drivers.redfish_client import RedfishEndpoint
from wattwise.errors import DeviceUnavailable, DriverError
from wattwise.model.metrics import METRICS
from wattwise.model.values import Action, ActionKind
from wattwise.sim.emulators.redfish_query import expand, parse_expand

MOCKUPS = DATASETS / "redfish_mockups" / "dmtf"


def _mockup_file(root: Path, odata_id: str) -> Path:
    return root / odata_id.removeprefix("/redfish/v1").strip("/") / "index.json"


def mockup_transport(
    root: Path, log: list[tuple[str, str, object]], *, expand_query: bool = True
) -> httpx.MockTransport:
    """Serve a DMTF short-form mockup tree; record writes; PATCH/POST answer 204.

    ``$expand`` is served as DMTF specifies (the mockups' roots advertise it); with
    ``expand_query=False`` the query is ignored although the root still advertises it.
    """

    def resolve(odata_id: str) -> dict[str, object] | None:
        file = _mockup_file(root, odata_id)
        return json.loads(file.read_bytes()) if file.is_file() else None

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method in ("PATCH", "POST"):
            log.append((request.method, request.url.path, json.loads(request.content or b"{}")))
            return httpx.Response(204)
        body = resolve(request.url.path)
        if body is None:
            return httpx.Response(404, json={"error": {"message": "not found"}})
        how = parse_expand(request.url.query.decode()) if expand_query else None
        return httpx.Response(200, json=body if how is None else expand(body, resolve, how))

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
    # Re-read right after the write: the control itself, or its collection expanded.
    assert {"/redfish/v1/Chassis/1U/Controls/PowerLimit", "/redfish/v1/Chassis/1U/Controls"} & set(gets)
    await driver.close()


def _counting(inner: httpx.MockTransport, gets: list[str]) -> httpx.MockTransport:
    def counting(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            gets.append(str(request.url.raw_path.decode()))
        return inner.handle_request(request)

    return httpx.MockTransport(counting)


async def _steady_read(
    name: str, *, expand_query: bool
) -> tuple[dict[tuple[str, str, tuple[tuple[str, str], ...]], float], list[str]]:
    """Readings and GETs of the second read (after the walk) of a mockup."""
    need(MOCKUPS.is_dir(), f"Redfish mockups not found at {MOCKUPS}")
    gets: list[str] = []
    transport = _counting(mockup_transport(MOCKUPS / name, [], expand_query=expand_query), gets)
    endpoint = RedfishEndpoint("http://bmc.test", "u", "p", auth="basic")
    driver = RedfishDriver("dev", endpoint, transport=transport, slow_every=1)
    await driver.read()
    gets.clear()
    readings = {(r.device_id, r.metric, r.tags): r.value for r in await driver.read()}
    await driver.close()
    return readings, list(gets)


@pytest.mark.parametrize("name", ["public-rackmount1", "public-pdu", "public-power-shelf", "public-cooling-unit"])
async def test_expand_fetches_collections_in_one_get_with_the_same_readings(name: str) -> None:
    expanded, expanded_gets = await _steady_read(name, expand_query=True)
    plain, plain_gets = await _steady_read(name, expand_query=False)
    assert expanded == plain
    assert len(expanded_gets) < len(plain_gets)
    assert any("$expand=." in g for g in expanded_gets)
    assert not any("$expand" in g for g in plain_gets)  # stopped asking after the first answer lacked members


async def test_unavailable_polls_keep_the_plan_until_rewalk_after_then_walk_again() -> None:
    need(MOCKUPS.is_dir(), f"Redfish mockups not found at {MOCKUPS}")
    gets: list[str] = []
    fail = {"now": False, "status": 503}
    inner = mockup_transport(MOCKUPS / "public-rackmount1", [])

    def flaky(request: httpx.Request) -> httpx.Response:
        gets.append(request.url.path)
        if fail["now"]:
            return httpx.Response(fail["status"])
        return inner.handle_request(request)

    endpoint = RedfishEndpoint("http://bmc.test", "u", "p", auth="basic")
    driver = RedfishDriver("dev", endpoint, transport=httpx.MockTransport(flaky))
    await driver.read()
    gets.clear()
    await driver.read()
    assert "/redfish/v1/" not in gets  # the plan is cached ...
    fail["now"] = True
    for _ in range(REWALK_AFTER - 1):
        with pytest.raises(DeviceUnavailable):
            await driver.read()
        assert driver.plan is not None  # ... kept through a busy BMC's odd timeout or 5xx ...
    fail["now"] = False
    gets.clear()
    await driver.read()
    assert "/redfish/v1/" not in gets  # ... (a success resets the count) ...
    fail["now"] = True
    for _ in range(REWALK_AFTER):
        with pytest.raises(DeviceUnavailable):
            await driver.read()
    assert driver.plan is None  # ... dropped after REWALK_AFTER in a row ...
    fail["now"] = False
    gets.clear()
    values = {(r.device_id, r.metric) for r in await driver.read()}
    assert gets[0] == "/redfish/v1/"  # ... and walked again
    assert ("dev", "power_w") in values
    fail.update(now=True, status=404)  # a 404: the tree changed under us, walk again at once
    with pytest.raises(DriverError):
        await driver.read()
    assert driver.plan is None
    await driver.close()
