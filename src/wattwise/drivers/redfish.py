"""RedfishDriver: servers' PSUs and power limits, rack PDUs, power shelves and CDUs over Redfish.

The first poll walks links from the service root (:mod:`wattwise.drivers.redfish_plan`) and
keeps the resources that hold readings; later polls GET only those, a whole collection of them
in one ``$expand`` request where the service supports it. A 404 or any other failed poll drops
the plan, so the next poll walks again (a rebooted or re-flashed BMC may have moved things).

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
from collections.abc import Callable, Iterator, Mapping, Sequence

import httpx

from wattwise.drivers import redfish_parse as rp
from wattwise.drivers.base import DeviceHealth
from wattwise.drivers.health import HealthTracker
from wattwise.drivers.redfish_client import Json, RedfishClient, RedfishEndpoint, RedfishRefused
from wattwise.drivers.redfish_plan import (
    Leaf,
    RedfishPlan,
    RedfishWalker,
    index_resources,
    plan_fetches,
    poll_singly,
    resource_key,
)
from wattwise.drivers.retry import RetryPolicy
from wattwise.errors import DeviceUnavailable, DriverError
from wattwise.model.values import Action, ActionKind, ActionResult, Reading

logger = logging.getLogger(__name__)

REWALK_AFTER = 3
"""Unavailable polls in a row after which the next poll walks the service again from its root."""

_SLOW = frozenset({"PowerSupply", "PsuControl", "LimitControl", "CoolingUnit"})
_POWER_STATE = {ActionKind.OUTLET_OFF: "Off", ActionKind.OUTLET_ON: "On", ActionKind.OUTLET_CYCLE: "PowerCycle"}


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
        self._unavailable = 0

    def supports(self, kind: ActionKind) -> bool:
        """Outlet switching, power caps and PSU set-points."""
        return kind in _POWER_STATE or kind in (ActionKind.POWER_CAP, ActionKind.PSU_SETPOINT)

    def health(self) -> DeviceHealth:
        """Availability as last seen."""
        return self.tracker.health()

    async def discover(self) -> RedfishPlan:
        """Walk the service from its root and remember what to poll."""
        self.plan = await RedfishWalker(self.client, self.device_id, self.id_map).walk()
        if self.plan.problems:
            logger.info(
                "device %s: %d Redfish links unresolved, e.g. %s",
                self.device_id,
                len(self.plan.problems),
                self.plan.problems[0],
            )
        return self.plan

    async def read(self) -> list[Reading]:
        """GET the resources of the plan that are due (walking first if needed), concurrently.

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

    def _invalidate(self) -> None:
        self._unavailable = 0
        self.plan = None
        self._slow_cache.clear()

    async def _read(self) -> list[Reading]:
        plan = self.plan or await self.discover()
        due = self._due(plan)
        try:
            bodies = await self._fetch(plan, due)
        except DeviceUnavailable:
            # A timeout or 5xx may be a BMC reboot or re-flash, or only a busy BMC or poller: the
            # plan is kept through REWALK_AFTER - 1 of them in a row (walking again costs a
            # dozen GETs, and under load re-walks on every timeout feed on each other), and the
            # next poll after that walks again from the service root.
            self._unavailable += 1
            if self._unavailable >= REWALK_AFTER:
                self._invalidate()
            raise
        except DriverError:
            self._invalidate()  # a 404 or a malformed answer: the tree changed under us
            raise
        self._unavailable = 0
        t_s = self.now_s()
        fresh: dict[str, list[Reading]] = {}
        for leaf in plan.leaves:
            if (body := bodies.get(resource_key(leaf.url))) is not None:
                fresh[leaf.url] = list(parse_leaf(leaf, body, t_s, plan.psu_names))
                if leaf.kind in _SLOW:
                    self._slow_cache[leaf.url] = fresh[leaf.url]
        self._dirty.clear()
        seen: dict[tuple[str, str, tuple[tuple[str, str], ...]], Reading] = {}
        for leaf in plan.leaves:
            for r in fresh.get(leaf.url) or self._slow_cache.get(leaf.url, []):
                seen.setdefault((r.device_id, r.metric, r.tags), r)
        return list(seen.values())

    async def _fetch(self, plan: RedfishPlan, due: Sequence[Leaf]) -> dict[str, Json]:
        """Bodies of the due leaves (and of whatever else an expanded answer held), by ``@odata.id``."""
        bodies: dict[str, Json] = {}
        fetches = plan_fetches(due, plan.expand_levels)
        for fetch, body in zip(fetches, await self._get_all([f.path for f in fetches]), strict=True):
            if fetch.levels:
                bodies.update(index_resources(body))
            else:
                bodies[resource_key(fetch.url)] = body
        missing = [leaf for leaf in due if resource_key(leaf.url) not in bodies]
        if missing:
            # The service ignored $expand, or an expanded member carries another @odata.id than
            # its link: GET those members by their URL, now and in later polls.
            logger.info(
                "device %s: %d resources missing from $expand answers (e.g. %s); polling them one by one",
                self.device_id,
                len(missing),
                missing[0].url,
            )
            poll_singly(plan, {leaf.url for leaf in missing})
            for leaf, body in zip(missing, await self._get_all([m.url for m in missing]), strict=True):
                bodies[resource_key(leaf.url)] = body
        return bodies

    async def _get_all(self, paths: Sequence[str]) -> list[Json]:
        if len(paths) <= 2:  # no task for the common single GET
            return [await self.client.get(p) for p in paths]
        return list(await asyncio.gather(*(self.client.get(p) for p in paths)))

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
