"""LibvirtDriver against libvirt's built-in test driver (no daemon): two hosts, real libvirt calls.

Each ``test:///<file>.xml`` URI opened by the driver is a private in-memory hypervisor
loaded from that file, so two files make two independent hosts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conftest import need
from wattwise.drivers.base import Driver
from wattwise.errors import DeviceUnavailable
from wattwise.model.values import Action, ActionKind

if TYPE_CHECKING:
    from wattwise.drivers.libvirt import LibvirtDriver

pytestmark = pytest.mark.peer("libvirt")


def make_driver(*args: Any, **kwargs: Any) -> LibvirtDriver:
    """The driver, imported only once libvirt-python is known to be there (skip, or fail in CI)."""
    need(importlib.util.find_spec("libvirt") is not None, "libvirt-python is not installed (see the report)")
    from wattwise.drivers.libvirt import LibvirtDriver

    return LibvirtDriver(*args, **kwargs)


HOST_A = """<node>
  <domain type='test'><name>vm-web</name><memory>1048576</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>
  <domain type='test'><name>vm-batch</name><memory>524288</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>
</node>
"""
HOST_B = "<node></node>\n"


@pytest.fixture
def driver(tmp_path: Path) -> LibvirtDriver:
    (tmp_path / "a.xml").write_text(HOST_A)
    (tmp_path / "b.xml").write_text(HOST_B)
    hosts = {"host-a": f"test://{tmp_path}/a.xml", "host-b": f"test://{tmp_path}/b.xml"}
    return make_driver(hosts, domain_ids={"vm-web": "wl-web"}, allow_cold_migration=True)


def act(kind: ActionKind, target: str, dest: str | None = None) -> Action:
    return Action(kind=kind, target_id=target, dest_id=dest, reason="rack 3 feed degraded")


async def running(driver: LibvirtDriver) -> dict[tuple[str, str], float]:
    return {(r.device_id, dict(r.tags)["host"]): r.value for r in await driver.read()}


async def test_read_lists_domains_per_host(driver: LibvirtDriver) -> None:
    assert isinstance(driver, Driver)
    assert await running(driver) == {("wl-web", "host-a"): 1.0, ("vm-batch", "host-a"): 1.0}
    await driver.close()


async def test_stop_and_start_are_idempotent(driver: LibvirtDriver) -> None:
    stopped = await driver.apply(act(ActionKind.WORKLOAD_STOP, "vm-batch"))
    assert stopped.ok and stopped.message == "shutdown requested on host-a"
    assert (await running(driver))[("vm-batch", "host-a")] == 0.0
    assert (await driver.apply(act(ActionKind.WORKLOAD_STOP, "vm-batch"))).message == "already stopped on host-a"
    started = await driver.apply(act(ActionKind.WORKLOAD_START, "vm-batch"))
    assert started.ok and started.message == "started on host-a"
    assert (await running(driver))[("vm-batch", "host-a")] == 1.0
    await driver.close()


async def test_hard_stop_destroys(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text(HOST_A)
    driver = make_driver({"host-a": f"test://{tmp_path}/a.xml"}, hard_stop=True)
    assert (await driver.apply(act(ActionKind.WORKLOAD_STOP, "vm-web"))).message == "destroyed on host-a"
    await driver.close()


async def test_migrate_moves_the_domain_and_keeps_it_running(driver: LibvirtDriver) -> None:
    moved = await driver.apply(act(ActionKind.WORKLOAD_MIGRATE, "wl-web", dest="host-b"))
    assert moved.ok, moved.message
    assert moved.message.startswith("cold-migrated to host-b")  # the test driver has no live migration
    state = await running(driver)
    assert state[("wl-web", "host-b")] == 1.0 and ("wl-web", "host-a") not in state
    again = await driver.apply(act(ActionKind.WORKLOAD_MIGRATE, "wl-web", dest="host-b"))
    assert again.ok and again.message == "already on host-b"
    await driver.close()


async def test_live_only_migration_is_refused_where_unsupported(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text(HOST_A)
    (tmp_path / "b.xml").write_text(HOST_B)
    hosts = {"host-a": f"test://{tmp_path}/a.xml", "host-b": f"test://{tmp_path}/b.xml"}
    driver = make_driver(hosts)  # allow_cold_migration=False
    result = await driver.apply(act(ActionKind.WORKLOAD_MIGRATE, "vm-web", dest="host-b"))
    assert not result.ok and "not supported" in result.message
    assert (await running(driver))[("vm-web", "host-a")] == 1.0  # left where it was
    await driver.close()


async def test_refusals(driver: LibvirtDriver) -> None:
    assert not (await driver.apply(act(ActionKind.WORKLOAD_STOP, "no-such-vm"))).ok
    assert not (await driver.apply(act(ActionKind.WORKLOAD_MIGRATE, "vm-web", dest="host-z"))).ok
    assert not (await driver.apply(act(ActionKind.OUTLET_OFF, "vm-web"))).ok
    await driver.close()


async def test_unreachable_host_is_device_unavailable(tmp_path: Path) -> None:
    driver = make_driver({"host-x": f"test://{tmp_path}/missing.xml"})
    with pytest.raises(DeviceUnavailable):
        await driver.read()
