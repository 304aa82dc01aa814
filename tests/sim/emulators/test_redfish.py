"""Closed loop over HTTP: RedfishDriver → wattwise Redfish emulator → Driver state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wattwise.drivers.redfish import RedfishDriver
from wattwise.drivers.redfish_client import RedfishEndpoint
from wattwise.drivers.retry import RetryPolicy
from wattwise.errors import DeviceAuthError, DeviceUnavailable
from wattwise.model.values import Action, ActionKind
from wattwise.sim.emulators.memory import MemoryDriver
from wattwise.sim.emulators.redfish import RedfishEmulator
from wattwise.sim.emulators.redfish_resources import RedfishDeviceSpec

FAST = RetryPolicy(timeout_s=1.0, attempts=2, backoff_s=0.01)


def _backend() -> MemoryDriver:
    state = {("srv-1", "power_w"): 480.0, ("srv-1", "power_cap_w"): 900.0, ("pdu-1", "power_w"): 700.0}
    for psu in ("srv-1/psu-a", "srv-1/psu-b"):
        state.update(
            {
                (psu, "capacity_w"): 800.0,
                (psu, "setpoint_w"): 240.0,
                (psu, "output_power_w"): 240.0,
                (psu, "input_power_w"): 255.0,
                (psu, "available"): 1.0,
            }
        )
    for i, oid in enumerate(("pdu-1/o1", "pdu-1/o2")):
        state.update({(oid, "outlet_on"): 1.0, (oid, "power_w"): 300.0 + 100 * i})
    return MemoryDriver(state)


@pytest.fixture
async def services() -> AsyncIterator[tuple[MemoryDriver, RedfishEmulator, RedfishEmulator]]:
    backend = _backend()
    server = RedfishEmulator(
        backend,
        RedfishDeviceSpec(
            "srv-1", "server", psu_ids=("srv-1/psu-a", "srv-1/psu-b"), limit_min_w=150.0, limit_max_w=1000.0
        ),
    )
    pdu = RedfishEmulator(backend, RedfishDeviceSpec("pdu-1", "pdu", outlet_ids=("pdu-1/o1", "pdu-1/o2")))
    await server.start()
    await pdu.start()
    try:
        yield backend, server, pdu
    finally:
        await server.stop()
        await pdu.stop()


def _driver(
    emulator: RedfishEmulator, device_id: str, password: str = "secret", auth: str = "session"
) -> RedfishDriver:
    endpoint = RedfishEndpoint(emulator.url, "admin", password, auth=auth)  # type: ignore[arg-type]
    return RedfishDriver(device_id, endpoint, id_map=emulator.spec.id_map(), retry=FAST)


async def test_power_limit_patch_and_psu_setpoint_change_state(
    services: tuple[MemoryDriver, RedfishEmulator, RedfishEmulator],
) -> None:
    backend, server, _ = services
    driver = _driver(server, "srv-1")
    values = {(r.device_id, r.metric): r.value for r in await driver.read()}
    assert values[("srv-1", "power_cap_w")] == 900.0
    assert values[("srv-1/psu-a", "setpoint_w")] == 240.0
    assert values[("srv-1/psu-b", "output_power_w")] == 240.0

    assert (await driver.apply(Action(kind=ActionKind.POWER_CAP, target_id="srv-1", value=400.0))).ok
    assert (await driver.apply(Action(kind=ActionKind.PSU_SETPOINT, target_id="srv-1/psu-a", value=320.0))).ok
    after = {(r.device_id, r.metric): r.value for r in await driver.read()}
    assert after[("srv-1", "power_cap_w")] == 400.0
    assert after[("srv-1", "power_w")] == 400.0  # the cap bounds the draw
    assert after[("srv-1/psu-a", "setpoint_w")] == 320.0

    refused = await driver.apply(Action(kind=ActionKind.POWER_CAP, target_id="srv-1", value=50.0))
    assert not refused.ok
    assert "outside" in refused.message
    assert backend.state[("srv-1", "power_cap_w")] == 400.0
    await driver.close()


async def test_outlet_power_control(services: tuple[MemoryDriver, RedfishEmulator, RedfishEmulator]) -> None:
    _, _, pdu = services
    driver = _driver(pdu, "pdu-1", auth="basic")
    before = {(r.device_id, r.metric): r.value for r in await driver.read()}
    assert before[("pdu-1/o2", "outlet_on")] == 1.0
    assert (await driver.apply(Action(kind=ActionKind.OUTLET_OFF, target_id="pdu-1/o2"))).ok
    after = {(r.device_id, r.metric): r.value for r in await driver.read()}
    assert after[("pdu-1/o2", "outlet_on")] == 0.0
    assert after[("pdu-1/o2", "power_w")] == 0.0
    assert after[("pdu-1/o1", "outlet_on")] == 1.0
    await driver.close()


async def test_session_expiry_relogs_in(services: tuple[MemoryDriver, RedfishEmulator, RedfishEmulator]) -> None:
    _, server, _ = services
    driver = _driver(server, "srv-1")
    await driver.read()
    first = set(server.sessions)
    server.expire_sessions()
    await driver.read()
    assert server.sessions and set(server.sessions) != first
    await driver.close()
    assert not server.sessions  # logout deleted the session


async def test_wrong_password_is_auth_error(services: tuple[MemoryDriver, RedfishEmulator, RedfishEmulator]) -> None:
    _, server, _ = services
    for auth in ("session", "basic"):
        driver = _driver(server, "srv-1", password="wrong", auth=auth)
        with pytest.raises(DeviceAuthError):
            await driver.read()
        assert not driver.health().available
        await driver.close()


async def test_dead_service_is_unavailable() -> None:
    from conftest import free_port

    driver = RedfishDriver("x", RedfishEndpoint(f"http://127.0.0.1:{free_port()}", "a", "b"), retry=FAST)
    with pytest.raises(DeviceUnavailable):
        await driver.read()
    await driver.close()


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import shutil
    import subprocess

    from conftest import need

    need(shutil.which("openssl") is not None, "openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


async def test_tls_is_verified_by_default(self_signed: tuple[Path, Path]) -> None:
    import ssl

    key, cert = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    bmc = RedfishEmulator(_backend(), RedfishDeviceSpec("srv-1", "server"), ssl_context=context)
    await bmc.start()
    try:
        assert bmc.url.startswith("https://")
        strict = RedfishDriver("srv-1", RedfishEndpoint(bmc.url, "admin", "secret"), retry=FAST)
        with pytest.raises(DeviceUnavailable, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await strict.read()
        await strict.close()
        lab = RedfishDriver("srv-1", RedfishEndpoint(bmc.url, "admin", "secret", verify_tls=False), retry=FAST)
        values = {(r.device_id, r.metric): r.value for r in await lab.read()}
        assert values[("srv-1", "power_w")] == 480.0
        await lab.close()
    finally:
        await bmc.stop()
