"""What a RedfishDriver polls: the walk from the service root, and the GETs of one poll.

The walk follows links from the service root once (Chassis → PowerSubsystem/PowerSupplies and
their Metrics, legacy Power and Thermal, Controls, Sensors, EnvironmentMetrics; PowerEquipment
→ RackPDUs/FloorPDUs/PowerShelves → Metrics, Outlets, Mains, PowerSupplies; ThermalEquipment →
CDUs → EnvironmentMetrics, LeakDetectors) and keeps the resources that hold readings (the
leaves). It never builds vendor paths.

A poll GETs only the leaves. A leaf found as a member of a collection (a PSU, an outlet, a
sensor, a control) or as a member's own sub-resource (a PSU's Metrics) remembers that
collection: when the service root advertises ``$expand`` (``ProtocolFeaturesSupported.
ExpandQuery`` with ``NoLinks``), one ``GET <collection>?$expand=.($levels=n)`` replaces a GET
per member, and the answer is indexed by ``@odata.id``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from wattwise.drivers import redfish_parse as rp
from wattwise.drivers.redfish_client import SERVICE_ROOT, Json, RedfishClient, RedfishRefused

_EQUIPMENT = ("RackPDUs", "FloorPDUs", "PowerShelves", "TransferSwitches", "Switchgear", "ElectricalBuses")
_COOLERS = ("CDUs", "ImmersionUnits", "HeatExchangers", "CoolingLoops")


@dataclass(frozen=True, slots=True)
class Leaf:
    """One resource that holds readings.

    Attributes:
        url: Its ``@odata.id``.
        kind: How to parse it (``PowerSupply``, ``Excerpts``, ``Outlet``...).
        device_id: Whose readings it holds.
        collection: The collection it was found in, when expanding that collection returns it.
        depth: Expansion levels from ``collection`` down to it (1: a member; 2: a member's
            sub-resource such as a PSU's Metrics); 0 when not reachable by expansion.
    """

    url: str
    kind: str
    device_id: str
    collection: str | None = None
    depth: int = 0


@dataclass
class RedfishPlan:
    """What the walk from the service root found.

    Attributes:
        leaves: Resources polled.
        outlet_targets: Outlet site id → ``#Outlet.PowerControl`` action target.
        psu_controls: PSU site id → its set-point Control.
        limit_control: The chassis power-limit Control, if any.
        legacy_power: The legacy Power resource, if any.
        psu_names: PSU ``@odata.id`` → site id.
        problems: Links that did not resolve.
        expand_levels: Deepest ``$expand=.`` the service accepts (0: none).
    """

    leaves: list[Leaf] = field(default_factory=list)
    outlet_targets: dict[str, str] = field(default_factory=dict)
    psu_controls: dict[str, str] = field(default_factory=dict)
    limit_control: str | None = None
    legacy_power: str | None = None
    psu_names: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    expand_levels: int = 0


@dataclass(frozen=True, slots=True)
class Fetch:
    """One GET of a poll: a resource, or a collection with its members expanded ``levels`` deep."""

    url: str
    levels: int = 0

    @property
    def path(self) -> str:
        """Request path, with the DMTF ``$expand`` query when expanding."""
        if self.levels == 0:
            return self.url
        return f"{self.url}?$expand=." + ("" if self.levels == 1 else f"($levels={self.levels})")


def plan_fetches(leaves: Iterable[Leaf], max_levels: int) -> list[Fetch]:
    """The GETs that return ``leaves``: one per expandable collection, one per other leaf.

    Args:
        leaves: The leaves due in this poll.
        max_levels: Deepest expansion the service accepts (0: no ``$expand``).

    Returns:
        Expanded collection fetches first, then single-resource fetches.
    """
    depth: dict[str, int] = {}
    single: dict[str, Fetch] = {}
    for leaf in leaves:
        if leaf.collection is not None and 1 <= leaf.depth <= max_levels:
            depth[leaf.collection] = max(depth.get(leaf.collection, 0), leaf.depth)
        else:
            single.setdefault(leaf.url, Fetch(leaf.url))
    return [*(Fetch(url, n) for url, n in depth.items()), *single.values()]


def resource_key(url: str) -> str:
    """``@odata.id`` as a lookup key (a trailing slash does not make another resource)."""
    return url.rstrip("/")


def index_resources(body: object) -> dict[str, Json]:
    """Every resource of an expanded answer, by ``@odata.id``.

    A bare link (``{"@odata.id": ...}`` alone) is not a resource. An id that appears twice
    with different bodies is left out (services do ship copy-pasted ids), so the caller
    GETs that resource by its URL instead of trusting either copy.
    """
    found: dict[str, Json] = {}
    clashes: set[str] = set()
    _collect(body, found, clashes)
    for key in clashes:
        del found[key]
    return found


def _collect(body: object, found: dict[str, Json], clashes: set[str]) -> None:
    if isinstance(body, list):
        for item in body:
            _collect(item, found, clashes)
        return
    if not isinstance(body, dict):
        return
    rid = body.get("@odata.id")
    if isinstance(rid, str) and len(body) > 1:
        key = resource_key(rid)
        if found.setdefault(key, body) != body:
            clashes.add(key)
    for value in body.values():
        if isinstance(value, dict | list):
            _collect(value, found, clashes)


def poll_singly(plan: RedfishPlan, urls: Collection[str]) -> None:
    """Fetch these leaves by their own URL from now on (an expanded answer did not hold them)."""
    plan.leaves = [replace(leaf, collection=None, depth=0) if leaf.url in urls else leaf for leaf in plan.leaves]


def _subordinate(url: str, parent: str) -> bool:
    return url.startswith(resource_key(parent) + "/")


class RedfishWalker:
    """Builds a :class:`RedfishPlan` by following links (concurrent GETs per collection).

    Args:
        client: The service's client.
        device_id: Site id of the service's main device.
        id_map: Site ids of resources, keyed by ``@odata.id`` or ``Id``.
    """

    def __init__(self, client: RedfishClient, device_id: str, id_map: Mapping[str, str]) -> None:
        self.client = client
        self.device_id = device_id
        self.id_map = id_map
        self.plan = RedfishPlan()

    def child_id(self, resource: Json, url: str) -> str:
        """Site id of a PSU or outlet: mapped, else ``<device_id>/<Id>``."""
        rid = str(resource.get("Id", url.rstrip("/").rsplit("/", 1)[-1]))
        return self.id_map.get(url) or self.id_map.get(rid) or f"{self.device_id}/{rid}"

    def own_id(self, url: str, resource: Json) -> str:
        """Site id of a chassis, PDU or CDU: mapped, else the service's device id."""
        return self.id_map.get(url) or self.id_map.get(str(resource.get("Id", ""))) or self.device_id

    async def get(self, url: str | None) -> Json | None:
        """GET a linked resource; a refused link is noted as a problem, not raised."""
        if url is None:
            return None
        try:
            return await self.client.get(url)
        except RedfishRefused as err:
            self.plan.problems.append(f"{url}: {err.detail or err.status_code}")
            return None

    async def members(self, url: str | None) -> list[tuple[str, Json]]:
        """The members of a collection, each GET once."""
        coll = await self.get(url)
        if coll is None:
            return []
        urls = rp.members(coll)
        found = await asyncio.gather(*(self.get(u) for u in urls))
        return [(u, r) for u, r in zip(urls, found, strict=True) if r is not None]

    async def walk(self) -> RedfishPlan:
        """Follow the links from the service root."""
        root = await self.client.get(SERVICE_ROOT)
        self.plan.expand_levels = rp.expand_levels(root)
        chassis = await self.members(rp.link(root, "Chassis"))
        await asyncio.gather(*(self.chassis(u, c) for u, c in chassis))
        await asyncio.gather(
            self.power_equipment(rp.link(root, "PowerEquipment")),
            self.thermal_equipment(rp.link(root, "ThermalEquipment")),
        )
        return self.plan

    def _add(self, leaf: Leaf) -> None:
        self.plan.leaves.append(leaf)

    async def chassis(self, url: str, chassis: Json) -> None:
        """Leaves of one chassis."""
        own = self.own_id(url, chassis)
        subsystem = await self.get(rp.link(chassis, "PowerSubsystem"))
        if subsystem is not None:
            await self.power_supplies(rp.link(subsystem, "PowerSupplies"))
        legacy = rp.link(chassis, "Power")
        if legacy is not None:
            self.plan.legacy_power = self.plan.legacy_power or legacy
            self._add(Leaf(legacy, "Power", own))
        for key, kind in (("Thermal", "Thermal"), ("EnvironmentMetrics", "Excerpts")):
            if (target := rp.link(chassis, key)) is not None:
                self._add(Leaf(target, kind, own))
        await self.controls(rp.link(chassis, "Controls"), own)
        sensors = rp.link(chassis, "Sensors")
        for surl, _ in await self.members(sensors):
            self._add(Leaf(surl, "Sensor", own, sensors, 1))

    async def power_supplies(self, url: str | None) -> None:
        """PSUs and their Metrics."""
        for purl, psu in await self.members(url):
            pid = self.child_id(psu, purl)
            self.plan.psu_names[purl] = pid
            self._add(Leaf(purl, "PowerSupply", pid, url, 1))
            if (metrics := rp.link(psu, "Metrics")) is not None:
                # Expanding the collection two levels deep returns a PSU's own Metrics with it.
                below = _subordinate(metrics, purl)
                self._add(Leaf(metrics, "Excerpts", pid, url if below else None, 2 if below else 0))

    async def controls(self, url: str | None, own: str) -> None:
        """Power Controls: PSU set-points and the chassis power limit."""
        for curl, control in await self.members(url):
            if control.get("ControlType") != "Power":
                continue
            related = [str(r.get("@odata.id", "")) for r in control.get("RelatedItem", []) if isinstance(r, dict)]
            psu = next((self.plan.psu_names[r] for r in related if r in self.plan.psu_names), None)
            if psu is not None:
                self.plan.psu_controls[psu] = curl
                self._add(Leaf(curl, "PsuControl", psu, url, 1))
            else:
                self.plan.limit_control = self.plan.limit_control or curl
                self._add(Leaf(curl, "LimitControl", own, url, 1))

    async def power_equipment(self, url: str | None) -> None:
        """Rack and floor PDUs, power shelves, switches."""
        equipment = await self.get(url)
        if equipment is None:
            return
        for key in _EQUIPMENT:
            for eurl, unit in await self.members(rp.link(equipment, key)):
                await self.distribution(eurl, unit)

    async def distribution(self, url: str, unit: Json) -> None:
        """One power distribution unit: metrics, outlets, mains, PSUs."""
        own = self.own_id(url, unit)
        if (metrics := rp.link(unit, "Metrics")) is not None:
            self._add(Leaf(metrics, "Excerpts", own))
        outlets = rp.link(unit, "Outlets")
        for ourl, outlet in await self.members(outlets):
            oid = self.child_id(outlet, ourl)
            self._add(Leaf(ourl, "Outlet", oid, outlets, 1))
            action = outlet.get("Actions", {}).get("#Outlet.PowerControl", {})
            if isinstance(action, dict) and "target" in action:
                self.plan.outlet_targets[oid] = str(action["target"])
        mains = rp.link(unit, "Mains")
        for murl, _ in await self.members(mains):
            self._add(Leaf(murl, "Circuit", own, mains, 1))
        await self.power_supplies(rp.link(unit, "PowerSupplies"))

    async def thermal_equipment(self, url: str | None) -> None:
        """CDUs and other cooling units: status, environment, leak detectors."""
        equipment = await self.get(url)
        if equipment is None:
            return
        for key in _COOLERS:
            for curl, unit in await self.members(rp.link(equipment, key)):
                own = self.own_id(curl, unit)
                self._add(Leaf(curl, "CoolingUnit", own))
                if (env := rp.link(unit, "EnvironmentMetrics")) is not None:
                    self._add(Leaf(env, "Excerpts", own))
                leak = await self.get(rp.link(unit, "LeakDetection"))
                detectors = rp.link(leak or {}, "LeakDetectors")
                for lurl, _ in await self.members(detectors):
                    self._add(Leaf(lurl, "LeakDetector", own, detectors, 1))
