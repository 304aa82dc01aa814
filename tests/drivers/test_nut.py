"""NutDriver against the real upsd: every nut-ddl dump through dummy-ups, quirks, faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from conftest import DATASETS, REPO, free_port, need
from drivers.peers import running_upsd
from wattwise.drivers.nut import NutDriver
from wattwise.drivers.nut_client import NutClient, NutEndpoint
from wattwise.drivers.nut_vars import NutVarParser, UpsStatus, parse_status
from wattwise.drivers.retry import RetryPolicy
from wattwise.errors import DeviceAuthError, DeviceProtocolError, DeviceUnavailable
from wattwise.model.metrics import METRICS, phase_of_metric
from wattwise.model.values import Action, ActionKind

DUMPS = DATASETS / "nut_ddl_device_dumps" / "dumps"
QUIRKY = REPO / "tests" / "fixtures" / "nut" / "quirky-ups.dev"
FAST = RetryPolicy(timeout_s=0.5, attempts=2, backoff_s=0.01)


@pytest.fixture(scope="module")
def every_dump(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, Path]]]:
    need(DUMPS.is_dir(), f"nut-ddl dumps not found at {DUMPS}")
    files = sorted(DUMPS.rglob("*.dev"))
    dummy = {f"d{i}": f for i, f in enumerate(files)}
    dummy["quirky"] = QUIRKY
    with running_upsd(tmp_path_factory.mktemp("upsd"), dummy) as proc:
        yield proc.config.port, dummy


async def test_every_dump_parses_through_real_upsd(every_dump: tuple[int, dict[str, Path]]) -> None:
    port, dummy = every_dump
    assert len(dummy) > 600
    client = NutClient(NutEndpoint(port=port))
    served = await client.list_ups()
    await client.close()
    assert set(dummy) <= set(served)
    empty = []
    for name in dummy:
        driver = NutDriver(name, name, NutEndpoint(port=port), retry=FAST)
        readings = await driver.read()
        await driver.close()
        assert all(r.metric in METRICS for r in readings), name
        keys = [(r.device_id, r.metric, r.t_s) for r in readings]
        assert len(keys) == len(set(keys)), f"{name} ({dummy[name].name}): readings share (device, metric, t_s)"
        if not readings:
            empty.append(name)
        assert driver.health().available
    # Every dump carries at least ups.status or a battery/load value.
    assert empty == []


async def test_three_phase_inputs_are_one_metric_per_phase(every_dump: tuple[int, dict[str, Path]]) -> None:
    # Regression (wattwise issue 5): input.L1..L3.* of one poll share (device, t_s).
    port, dummy = every_dump
    name = next(n for n, f in dummy.items() if f.name == "Eaton__93PM__snmp-ups__2.7.4__01.dev")
    driver = NutDriver("ups-3ph", name, NutEndpoint(port=port), retry=FAST)
    readings = await driver.read()
    await driver.close()
    phased = {r.metric: (r.value, r.tags) for r in readings if phase_of_metric(r.metric) is not None}
    assert phased == {
        "current_l1_a": (6.0, (("phase", "L1"),)),
        "current_l2_a": (5.0, (("phase", "L2"),)),
        "current_l3_a": (5.0, (("phase", "L3"),)),
        "power_l1_w": (314.0, (("phase", "L1"),)),
        "power_l2_w": (292.0, (("phase", "L2"),)),
        "power_l3_w": (296.0, (("phase", "L3"),)),
    }


def test_phase_and_temperature_variables_map_to_distinct_metrics() -> None:
    variables = {
        "input.current": "12.5",
        "input.L1.current": "4.0",
        "input.L2.current": "4.5",
        "input.L3.current": "4.0",
        "input.L2.realpower": "990",
        "ups.temperature": "31",
        "battery.temperature": "27",
    }
    readings, problems = NutVarParser("pdu-n").parse(variables, 5.0)
    assert problems == []
    assert {r.metric: r.value for r in readings} == {
        "current_a": 12.5,
        "current_l1_a": 4.0,
        "current_l2_a": 4.5,
        "current_l3_a": 4.0,
        "power_l2_w": 990.0,
        "temperature_c": 31.0,
        "battery_temperature_c": 27.0,
    }
    assert len(readings) == len(variables)


async def test_quirky_values_are_reported_per_variable(every_dump: tuple[int, dict[str, Path]]) -> None:
    port, _ = every_dump
    driver = NutDriver("ups-q", "quirky", NutEndpoint(port=port), outlet_ids={1: "ups-q/o1"}, retry=FAST)
    readings = {(r.device_id, r.metric): r.value for r in await driver.read()}
    await driver.close()
    bad = {p.var for p in driver.last_problems}
    assert bad == {"ups.efficiency", "ups.temperature"}
    assert readings[("ups-q", "battery_charge_frac")] == pytest.approx(0.42)
    assert readings[("ups-q", "load_frac")] == pytest.approx(0.55)
    assert readings[("ups-q", "on_battery")] == 1.0
    assert readings[("ups-q", "low_battery")] == 1.0
    assert int(readings[("ups-q", "ups_status_flags")]) == UpsStatus.OB | UpsStatus.DISCHRG | UpsStatus.LB
    assert readings[("ups-q/o1", "outlet_on")] == 1.0
    assert readings[("ups-q.outlet2", "outlet_on")] == 0.0


@pytest.mark.parametrize(
    ("status", "on_battery"),
    [("OL CHRG", 0.0), ("OB DISCHRG", 1.0), ("OB LB", 1.0), ("OFF", 1.0), ("OL OFF", 0.0), ("OFF LB", 1.0)],
)
def test_a_ups_off_without_line_power_is_still_on_battery(status: str, on_battery: float) -> None:
    """A battery run flat reports OFF, not OB: the power event is not over until OL returns."""
    readings, problems = NutVarParser("u").parse({"ups.status": status}, 0.0)
    assert problems == []
    assert {r.metric: r.value for r in readings}["on_battery"] == on_battery


def test_status_flags_and_unknown_tokens() -> None:
    assert parse_status("OL CHRG") == (int(UpsStatus.OL | UpsStatus.CHRG), [])
    mask, unknown = parse_status("OL WEIRD")
    assert mask == int(UpsStatus.OL)
    assert unknown == ["WEIRD"]
    readings, problems = NutVarParser("u").parse({"ups.status": "WEIRD", "battery.charge": "nan"}, 0.0)
    assert readings == []
    assert {p.var for p in problems} == {"ups.status", "battery.charge"}


async def test_dead_peer_is_unavailable_and_staleness_rises() -> None:
    driver = NutDriver("ups-dead", "x", NutEndpoint(port=free_port()), retry=FAST)
    with pytest.raises(DeviceUnavailable):
        await driver.read()
    assert not driver.health().available
    assert driver.tracker.staleness_s() == float("inf")


async def _serve(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    writers: list[asyncio.StreamWriter] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await handler(reader, writer)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def hanging_port() -> AsyncIterator[int]:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers
        writer.close()

    async for port in _serve(hang):
        yield port


@pytest.fixture
async def garbage_port() -> AsyncIterator[int]:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HELLO I AM NOT UPSD\n")
        await writer.drain()
        await reader.read()
        writer.close()

    async for port in _serve(garbage):
        yield port


async def test_hanging_peer_times_out_without_blocking(hanging_port: int) -> None:
    driver = NutDriver("ups-hang", "x", NutEndpoint(port=hanging_port), retry=FAST)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(DeviceUnavailable):
        await driver.read()
    assert loop.time() - t0 < 2.0
    await driver.close()


async def test_garbage_peer_is_a_protocol_error(garbage_port: int) -> None:
    driver = NutDriver("ups-garbage", "x", NutEndpoint(port=garbage_port), retry=FAST)
    with pytest.raises(DeviceProtocolError):
        await driver.read()
    await driver.close()


async def test_bad_password_is_an_auth_error(every_dump: tuple[int, dict[str, Path]]) -> None:
    port, _ = every_dump
    driver = NutDriver("ups-q", "quirky", NutEndpoint(port=port, username="admin", password="wrong"), retry=FAST)
    # upsd checks that the command exists before the login: load.off is one dummy-ups lists.
    with pytest.raises(DeviceAuthError):
        await driver.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="ups-q"))
    await driver.close()


async def test_unsupported_command_is_a_refusal_not_an_error(every_dump: tuple[int, dict[str, Path]]) -> None:
    port, _ = every_dump
    driver = NutDriver("ups-q", "quirky", NutEndpoint(port=port, username="admin", password="secret"), retry=FAST)
    result = await driver.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="ups-q.outlet1"))
    assert not result.ok
    assert "CMD-NOT-SUPPORTED" in result.message
    not_mine = await driver.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="elsewhere"))
    assert not not_mine.ok
    await driver.close()


async def test_set_var_get_var_and_list_rw(every_dump: tuple[int, dict[str, Path]]) -> None:
    port, _ = every_dump
    client = NutClient(NutEndpoint(port=port, username="admin", password="secret"))
    assert "battery.charge" in await client.list_rw("d0")  # dummy-ups makes every variable writable
    assert await client.set_var("d0", "ups.delay.shutdown", "42") == "SUCCESS"
    for _ in range(50):  # dummy-ups applies it on its next pass
        if await client.get_var("d0", "ups.delay.shutdown") == "42":
            break
        await asyncio.sleep(0.05)
    assert await client.get_var("d0", "ups.delay.shutdown") == "42"
    await client.close()
    anonymous = NutClient(NutEndpoint(port=port))
    with pytest.raises(DeviceAuthError):
        await anonymous.set_var("d0", "ups.delay.shutdown", "7")
    await anonymous.close()
