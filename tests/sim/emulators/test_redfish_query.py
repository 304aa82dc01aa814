"""DMTF $expand as the emulated Redfish services serve it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from wattwise.sim.emulators.memory import MemoryDriver
from wattwise.sim.emulators.redfish import RedfishEmulator
from wattwise.sim.emulators.redfish_query import Expand, ExpandQueryError, expand, parse_expand
from wattwise.sim.emulators.redfish_resources import RedfishDeviceSpec

TREE: dict[str, dict[str, Any]] = {
    "/c": {"@odata.id": "/c", "Members": [{"@odata.id": "/c/1"}], "Links": {"Owner": {"@odata.id": "/o"}}},
    "/c/1": {"@odata.id": "/c/1", "Metrics": {"@odata.id": "/c/1/m"}, "Missing": {"@odata.id": "/nope"}},
    "/c/1/m": {"@odata.id": "/c/1/m", "PowerWatts": {"Reading": 5.0}},
    "/o": {"@odata.id": "/o", "Name": "owner"},
}


def test_parse_expand() -> None:
    assert parse_expand("") is None
    assert parse_expand("$top=1") is None
    assert parse_expand("$expand=.") == Expand(".", 1)
    assert parse_expand("%24expand=.%28%24levels%3D3%29") == Expand(".", 3)
    for bad in ("$expand=x", "$expand=.($levels=0)", "$expand=*($levels=7)"):
        with pytest.raises(ExpandQueryError):
            parse_expand(bad)


def test_expand_modes_and_levels() -> None:
    one = expand(TREE["/c"], TREE.get, Expand(".", 1))
    assert one["Members"][0]["Metrics"] == {"@odata.id": "/c/1/m"}  # one level only
    assert one["Links"]["Owner"] == {"@odata.id": "/o"}  # '.' leaves Links alone
    two = expand(TREE["/c"], TREE.get, Expand(".", 2))
    assert two["Members"][0]["Metrics"]["PowerWatts"] == {"Reading": 5.0}
    assert two["Members"][0]["Missing"] == {"@odata.id": "/nope"}  # unresolvable links stay links
    links = expand(TREE["/c"], TREE.get, Expand("~", 1))
    assert links["Links"]["Owner"]["Name"] == "owner"
    assert links["Members"] == [{"@odata.id": "/c/1"}]
    everything = expand(TREE["/c"], TREE.get, Expand("*", 1))
    assert everything["Links"]["Owner"]["Name"] == "owner"
    assert everything["Members"][0]["@odata.id"] == "/c/1"
    assert TREE["/c"]["Members"] == [{"@odata.id": "/c/1"}]  # input not changed


@pytest.mark.parametrize("supported", [True, False])
async def test_emulator_advertises_and_serves_expand(supported: bool) -> None:
    spec = RedfishDeviceSpec("srv", "server", psu_ids=("srv/a", "srv/b"), expand_query=supported)
    bmc = RedfishEmulator(MemoryDriver({("srv/a", "output_power_w"): 120.0}), spec)
    await bmc.start()
    try:
        async with httpx.AsyncClient(base_url=bmc.url, auth=("admin", "secret")) as client:
            root = (await client.get("/redfish/v1/")).json()
            assert ("ProtocolFeaturesSupported" in root) is supported
            psus = "/redfish/v1/Chassis/1/PowerSubsystem/PowerSupplies"
            answer = await client.get(f"{psus}?$expand=.($levels=2)")
            if not supported:
                assert answer.status_code == 501
                return
            members = answer.json()["Members"]
            assert [m["Id"] for m in members] == ["PSU1", "PSU2"]
            assert members[0]["Metrics"]["OutputPowerWatts"] == {"Reading": 120.0}
            assert (await client.get(f"{psus}?$expand=.($levels=9)")).status_code == 400
    finally:
        await bmc.stop()
