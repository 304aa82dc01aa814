"""RedfishDriver: servers' PSUs and power limits, rack PDUs, power shelves and CDUs over Redfish.

The first poll walks links from the service root (Chassis → PowerSubsystem/PowerSupplies and
their Metrics, legacy Power and Thermal, Controls, Sensors, EnvironmentMetrics; PowerEquipment
→ RackPDUs/FloorPDUs/PowerShelves → Metrics, Outlets, Mains, PowerSupplies; ThermalEquipment →
CDUs → EnvironmentMetrics, LeakDetectors) and keeps the list of resources to poll; later polls
GET only those, and a resource that disappears (404) triggers a new walk.

Device ids: resources named in ``id_map`` (by ``@odata.id`` or by ``Id``) get that site id;
otherwise the service's chassis/PDU/CDU is ``device_id`` and a PSU or outlet is
``<device_id>/<Id>``.

Actions: ``OUTLET_OFF/ON/CYCLE`` → ``#Outlet.PowerControl``; ``POWER_CAP`` → PATCH the
chassis' Control of type Power (``SetPoint``), or legacy ``PowerControl[0].PowerLimit``;
``PSU_SETPOINT`` → PATCH the Control of type Power whose ``RelatedItem`` is that PSU.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import httpx

from wattwise.drivers import redfish_parse as rp
from wattwise.drivers.base import DeviceHealth
from wattwise.drivers.health import HealthTracker
from wattwise.drivers.redfish_client import SERVICE_ROOT, Json, RedfishClient, RedfishEndpoint, RedfishRefused
from wattwise.drivers.retry import RetryPolicy
from wattwise.errors import DriverError
from wattwise.model.values import Action, ActionKind, ActionResult, Reading

logger = logging.getLogger(__name__)

_EQUIPMENT = ("RackPDUs", "FloorPDUs", "PowerShelves", "TransferSwitches", "Switchgear", "ElectricalBuses")
_COOLERS = ("CDUs", "ImmersionUnits", "HeatExchangers", "CoolingLoops")
_SLOW = frozenset({"PowerSupply", "PsuControl", "LimitControl", "CoolingUnit"})
_POWER_STATE = {ActionKind.OUTLET_OFF: "Off", ActionKind.OUTLET_ON: "On", ActionKind.OUTLET_CYCLE: "PowerCycle"}


@dataclass(frozen=True, slots=True)
class Leaf:
    """One resource polled every cycle: its URL, how to parse it, and whose readings it holds."""

    url: str
    kind: str
    device_id: str


@dataclass
class RedfishPlan:
    """What the walk from the service root found."""

    leaves: list[Leaf] = field(default_factory=list)
    outlet_targets: dict[str, str] = field(default_factory=dict)
    psu_controls: dict[str, str] = field(default_factory=dict)
    limit_control: str | None = None
    legacy_power: str | None = None
    psu_names: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class _Walker:
    """Builds a :class:`RedfishPlan` by following links (bounded concurrency per level)."""

    def __init__(self, client: RedfishClient, device_id: str, id_map: Mapping[str, str]) -> None:
        self.client = client
        self.device_id = device_id
        self.id_map = id_map
        self.plan = RedfishPlan()

    def child_id(self, resource: Json, url: str) -> str:
        rid = str(resource.get("Id", url.rstrip("/").rsplit("/", 1)[-1]))
        return self.id_map.get(url) or self.id_map.get(rid) or f"{self.device_id}/{rid}"

    def own_id(self, url: str, resource: Json) -> str:
        return self.id_map.get(url) or self.id_map.get(str(resource.get("Id", ""))) or self.device_id

    async def get(self, url: str | None) -> Json | None:
        if url is None:
            return None
        try:
            return await self.client.get(url)
        except RedfishRefused as err:
            self.plan.problems.append(f"{url}: {err.detail or err.status_code}")
            return None

    async def members(self, url: str | None) -> list[tuple[str, Json]]:
        coll = await self.get(url)
        if coll is None:
            return []
        urls = rp.members(coll)
        found = await asyncio.gather(*(self.get(u) for u in urls))
        return [(u, r) for u, r in zip(urls, found, strict=True) if r is not None]

    async def walk(self) -> RedfishPlan:
        root = await self.client.get(SERVICE_ROOT)
        chassis = await self.members(rp.link(root, "Chassis"))
        await asyncio.gather(*(self.chassis(u, c) for u, c in chassis))
        await asyncio.gather(
            self.power_equipment(rp.link(root, "PowerEquipment")),
            self.thermal_equipment(rp.link(root, "ThermalEquipment")),
        )
        return self.plan

    async def chassis(self, url: str, chassis: Json) -> None:
        own = self.own_id(url, chassis)
        subsystem = await self.get(rp.link(chassis, "PowerSubsystem"))
        if subsystem is not None:
            await self.power_supplies(rp.link(subsystem, "PowerSupplies"))
        legacy = rp.link(chassis, "Power")
        if legacy is not None:
            self.plan.legacy_power = self.plan.legacy_power or legacy
            self.plan.leaves.append(Leaf(legacy, "Power", own))
        for key, kind in (("Thermal", "Thermal"), ("EnvironmentMetrics", "Excerpts")):
            if (target := rp.link(chassis, key)) is not None:
                self.plan.leaves.append(Leaf(target, kind, own))
        await self.controls(rp.link(chassis, "Controls"), own)
        for surl, _ in await self.members(rp.link(chassis, "Sensors")):
            self.plan.leaves.append(Leaf(surl, "Sensor", own))

    async def power_supplies(self, url: str | None) -> None:
        for purl, psu in await self.members(url):
            pid = self.child_id(psu, purl)
            self.plan.psu_names[purl] = pid
            self.plan.leaves.append(Leaf(purl, "PowerSupply", pid))
            if (metrics := rp.link(psu, "Metrics")) is not None:
                self.plan.leaves.append(Leaf(metrics, "Excerpts", pid))

    async def controls(self, url: str | None, own: str) -> None:
        for curl, control in await self.members(url):
            if control.get("ControlType") != "Power":
                continue
            related = [str(r.get("@odata.id", "")) for r in control.get("RelatedItem", []) if isinstance(r, dict)]
            psu = next((self.plan.psu_names[r] for r in related if r in self.plan.psu_names), None)
            if psu is not None:
                self.plan.psu_controls[psu] = curl
                self.plan.leaves.append(Leaf(curl, "PsuControl", psu))
            else:
                self.plan.limit_control = self.plan.limit_control or curl
                self.plan.leaves.append(Leaf(curl, "LimitControl", own))

    async def power_equipment(self, url: str | None) -> None:
        equipment = await self.get(url)
        if equipment is None:
            return
        for key in _EQUIPMENT:
            for eurl, unit in await self.members(rp.link(equipment, key)):
                await self.distribution(eurl, unit)

    async def distribution(self, url: str, unit: Json) -> None:
        own = self.own_id(url, unit)
        if (metrics := rp.link(unit, "Metrics")) is not None:
            self.plan.leaves.append(Leaf(metrics, "Excerpts", own))
        for ourl, outlet in await self.members(rp.link(unit, "Outlets")):
            oid = self.child_id(outlet, ourl)
            self.plan.leaves.append(Leaf(ourl, "Outlet", oid))
            action = outlet.get("Actions", {}).get("#Outlet.PowerControl", {})
            if isinstance(action, dict) and "target" in action:
                self.plan.outlet_targets[oid] = str(action["target"])
        for murl, _ in await self.members(rp.link(unit, "Mains")):
            self.plan.leaves.append(Leaf(murl, "Circuit", own))
        await self.power_supplies(rp.link(unit, "PowerSupplies"))

    async def thermal_equipment(self, url: str | None) -> None:
        equipment = await self.get(url)
        if equipment is None:
            return
        for key in _COOLERS:
            for curl, unit in await self.members(rp.link(equipment, key)):
                own = self.own_id(curl, unit)
                self.plan.leaves.append(Leaf(curl, "CoolingUnit", own))
                if (env := rp.link(unit, "EnvironmentMetrics")) is not None:
                    self.plan.leaves.append(Leaf(env, "Excerpts", own))
                leak = await self.get(rp.link(unit, "LeakDetection"))
                for lurl, _ in await self.members(rp.link(leak or {}, "LeakDetectors")):
                    self.plan.leaves.append(Leaf(lurl, "LeakDetector", own))


def parse_leaf(leaf: Leaf, resource: Json, t_s: float, psu_names: Mapping[str, str]) -> Iterator[Reading]:
    """Readings of one polled resource."""
    d = leaf.device_id
    parsers: dict[str, Callable[[], Iterator[Reading]]] = {
        "PowerSupply": lambda: rp.parse_power_supply(resource, d, t_s),
        "Excerpts": lambda: rp.excerpts(resource, d, t_s),
        "Outlet": lambda: rp.parse_outlet(resource, d, t_s),
        "Sensor": lambda: rp.parse_sensor(resource, d, t_s),
        "Power": lambda: rp.parse_legacy_power(resource, d, t_s, dict(psu_names)),
        "Thermal": lambda: rp.parse_legacy_thermal(resource, d, t_s),
        "LeakDetector": lambda: rp.parse_leak_detector(resource, d, t_s),
        "PsuControl": lambda: rp.parse_control(resource, d, t_s, psu=True),
        "LimitControl": lambda: rp.parse_control(resource, d, t_s, psu=False),
        "Circuit": lambda: rp.excerpts(resource, d, t_s, (("circuit", str(resource.get("Id", ""))),)),
        "CoolingUnit": lambda: iter(
            [Reading(d, "available", v, t_s)] if (v := rp.status_available(resource)) is not None else []
        ),
    }
    return parsers[leaf.kind]()


class RedfishDriver:
    """One Redfish service (a BMC, a PDU, a power shelf, a CDU) as a wattwise Driver.

    Args:
        device_id: Site id of the service's main device.
        endpoint: URL and credentials.
        id_map: Site ids of resources, keyed by ``@odata.id`` or ``Id``.
        retry: Timeout, attempts and back-off per request.
        now_s: Time source.
        transport: httpx transport override (mockup replay in tests).
        slow_every: Poll slow resources (PSU status, controls) every this many reads.
    """

    def __init__(
        self,
        device_id: str,
        endpoint: RedfishEndpoint,
        *,
        id_map: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        now_s: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        slow_every: int = 10,
    ) -> None:
        self.name = f"redfish:{device_id}"
        self.device_id = device_id
        self.endpoint = endpoint
        self.id_map = dict(id_map or {})
        self.now_s = now_s
        self.client = RedfishClient(endpoint, retry, device_id, transport)
        self.tracker = HealthTracker(device_id, now_s)
        self.plan: RedfishPlan | None = None
        self.slow_every = slow_every
        self._reads = 0
        self._slow_cache: dict[str, list[Reading]] = {}
        self._dirty: set[str] = set()

    def supports(self, kind: ActionKind) -> bool:
        """Outlet switching, power caps and PSU set-points."""
        return kind in _POWER_STATE or kind in (ActionKind.POWER_CAP, ActionKind.PSU_SETPOINT)

    def health(self) -> DeviceHealth:
        """Availability as last seen."""
        return self.tracker.health()

    async def discover(self) -> RedfishPlan:
        """Walk the service from its root and remember what to poll."""
        self.plan = await _Walker(self.client, self.device_id, self.id_map).walk()
        if self.plan.problems:
            logger.info(
                "device %s: %d Redfish links unresolved, e.g. %s",
                self.device_id,
                len(self.plan.problems),
                self.plan.problems[0],
            )
        return self.plan

    async def read(self) -> list[Reading]:
        """GET every resource of the plan (walking first if needed), concurrently.

        Raises:
            DriverError: The service is unreachable, refused us, or answered garbage.
        """
        try:
            readings = await self._read()
        except DriverError as err:
            self.tracker.failed(err)
            raise
        self.tracker.ok()
        return readings

    def _due(self, plan: RedfishPlan) -> list[Leaf]:
        # Slow resources (PSU inventory/status, controls, cooling-unit status) change rarely or
        # only when we write them: poll them every ``slow_every`` reads, and right after a write.
        self._reads += 1
        refresh_slow = self._reads % self.slow_every == 1 or self.slow_every <= 1
        return [
            leaf
            for leaf in plan.leaves
            if refresh_slow or leaf.kind not in _SLOW or leaf.url in self._dirty or leaf.url not in self._slow_cache
        ]

    async def _read(self) -> list[Reading]:
        plan = self.plan or await self.discover()
        due = self._due(plan)
        try:
            bodies = await asyncio.gather(*(self.client.get(leaf.url) for leaf in due))
        except RedfishRefused as err:
            if err.status_code != 404:
                raise
            self.plan = None  # the tree changed under us: walk again next time
            raise
        t_s = self.now_s()
        fresh = {
            leaf.url: list(parse_leaf(leaf, body, t_s, plan.psu_names)) for leaf, body in zip(due, bodies, strict=True)
        }
        for leaf in due:
            if leaf.kind in _SLOW:
                self._slow_cache[leaf.url] = fresh[leaf.url]
        self._dirty.clear()
        seen: dict[tuple[str, str, tuple[tuple[str, str], ...]], Reading] = {}
        for leaf in plan.leaves:
            for r in fresh.get(leaf.url) or self._slow_cache.get(leaf.url, []):
                seen.setdefault((r.device_id, r.metric, r.tags), r)
        return list(seen.values())

    async def apply(self, action: Action) -> ActionResult:
        """POST the outlet action or PATCH the control; a 4xx answer is a refusal (``ok=False``).

        Raises:
            DriverError: The service is unreachable or refused our credentials.
        """
        plan = self.plan or await self.discover()
        try:
            method, url, body = self._request_for(action, plan)
        except ValueError as err:
            return ActionResult(command_id=action.command_id, ok=False, message=str(err), t_s=self.now_s())
        self._dirty.add(url)  # re-read what we wrote on the next poll
        try:
            if method == "POST":
                await self.client.post(url, body)
            else:
                await self.client.patch(url, body)
        except RedfishRefused as err:
            return ActionResult(
                command_id=action.command_id, ok=False, message=f"{method} {url}: {err}", t_s=self.now_s()
            )
        logger.info("device %s: %s %s %s (command %s)", self.device_id, method, url, body, action.command_id)
        return ActionResult(command_id=action.command_id, ok=True, message=f"{method} {url}", t_s=self.now_s())

    def _request_for(self, action: Action, plan: RedfishPlan) -> tuple[str, str, Json]:
        if action.kind in _POWER_STATE:
            target = plan.outlet_targets.get(action.target_id)
            if target is None:
                raise ValueError(f"{action.target_id} is not a switchable outlet of {self.device_id}")
            return "POST", target, {"PowerState": _POWER_STATE[action.kind]}
        if action.value is None:
            raise ValueError(f"{action.kind} needs a value in W")
        if action.kind is ActionKind.PSU_SETPOINT:
            control = plan.psu_controls.get(action.target_id)
            if control is None:
                raise ValueError(f"{action.target_id} has no PSU set-point control")
            return "PATCH", control, {"SetPoint": action.value}
        if action.kind is ActionKind.POWER_CAP:
            if plan.limit_control is not None:
                return "PATCH", plan.limit_control, {"SetPoint": action.value}
            if plan.legacy_power is not None:
                return "PATCH", plan.legacy_power, {"PowerControl": [{"PowerLimit": {"LimitInWatts": action.value}}]}
            raise ValueError(f"{self.device_id} exposes no power limit")
        raise ValueError(f"Redfish cannot apply {action.kind}")

    async def close(self) -> None:
        """Log out and close connections."""
        await self.client.close()
