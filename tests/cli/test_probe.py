"""``wattwise probe`` against the emulators (Redfish, SNMP, Modbus), real upsd, and dead peers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import free_port
from drivers.peers import running_upsd
from wattwise.cli import app
from wattwise.cli.probe import probe
from wattwise.drivers.modbus import RackletIds
from wattwise.sim.emulators.memory import MemoryDriver
from wattwise.sim.emulators.modbus import ModbusRackletEmulator
from wattwise.sim.emulators.redfish import RedfishEmulator
from wattwise.sim.emulators.redfish_resources import RedfishDeviceSpec
from wattwise.sim.emulators.snmp import SnmpPduAgent, SnmpPduSpec

BACKEND = {
    ("srv-1", "power_w"): 321.0,
    ("pdu-1", "power_w"): 800.0,
    ("pdu-1/o1", "outlet_on"): 1.0,
    ("rk/psu1", "output_power_w"): 999.0,
    ("rk", "dc_voltage_v"): 48.0,
}


async def test_probe_redfish_snmp_modbus() -> None:
    backend = MemoryDriver(BACKEND)
    bmc = RedfishEmulator(backend, RedfishDeviceSpec("srv-1", "server", psu_ids=("srv-1/psu1",)))
    agent = SnmpPduAgent(backend, SnmpPduSpec("pdu-1", ("pdu-1/o1",), community="lab"))
    racklet = ModbusRackletEmulator(backend, RackletIds("rk", ("rk/psu1",), "rk"))
    for s in (bmc, agent, racklet):
        await s.start()
    try:
        redfish = await probe(f"redfish+http://admin:secret@127.0.0.1:{bmc.server.port}")
        assert "PowerSupply×1" in redfish[0] and any("321" in line for line in redfish)
        assert any("power limit" in line for line in redfish)
        snmp = await probe(f"snmp://lab@127.0.0.1:{agent.port}")
        assert "WW-TWIN-PDU" in snmp[0] and any("800" in line for line in snmp)
        modbus = await probe(f"modbus://127.0.0.1:{racklet.port}")
        assert any("dc_voltage_v" in line and "48" in line for line in modbus)
        assert any("999" in line for line in modbus)
    finally:
        for s in (bmc, agent, racklet):
            await s.stop()


def test_probe_nut_real_upsd(tmp_path: Path) -> None:
    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "nut" / "quirky-ups.dev"
    with running_upsd(tmp_path, {"quirky": fixture}) as proc:
        result = CliRunner().invoke(app, ["probe", f"nut://127.0.0.1:{proc.config.port}"])
    assert result.exit_code == 0, result.output
    assert "Quirky Q-1500" in result.output
    assert "battery_charge_frac" in result.output
    assert "unparsable ups.efficiency" in result.output


def test_probe_json_separates_readings_from_the_description(tmp_path: Path) -> None:
    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "nut" / "quirky-ups.dev"
    with running_upsd(tmp_path, {"quirky": fixture}) as proc:
        result = CliRunner().invoke(app, ["probe", f"nut://127.0.0.1:{proc.config.port}", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert any("Quirky Q-1500" in line for line in doc["description"])
    charge = [r for r in doc["readings"] if r["metric"] == "battery_charge_frac"]
    assert charge and 0.0 <= charge[0]["value"] <= 1.0 and charge[0]["device_id"] == "quirky"
    assert not any("battery_charge_frac" in line for line in doc["description"])


def test_probe_dead_and_bad_urls() -> None:
    runner = CliRunner()
    dead = runner.invoke(app, ["probe", "--timeout", "0.3", f"nut://127.0.0.1:{free_port()}"])
    assert dead.exit_code == 1
    assert "cannot probe" in dead.output
    bad = runner.invoke(app, ["probe", "ftp://x"])
    assert bad.exit_code == 2


def test_probe_wrong_redfish_password() -> None:
    async def run() -> int:
        bmc = RedfishEmulator(MemoryDriver(BACKEND), RedfishDeviceSpec("srv-1", "server"))
        await bmc.start()
        try:
            from wattwise.errors import DeviceAuthError

            with pytest.raises(DeviceAuthError):
                await probe(f"redfish+http://admin:nope@127.0.0.1:{bmc.server.port}", timeout_s=1.0)
            return 0
        finally:
            await bmc.stop()

    assert asyncio.run(run()) == 0
