"""Site services as Kubernetes Deployments or StatefulSets: shed, restore and throttle by replica count.

A service maps to one workload, ``namespace/name`` of a Deployment or a StatefulSet. Its
*full* replica count is the one it had before wattwise first took replicas away; while it runs
below that, the count is kept in the workload's annotation ``wattwise.io/replicas-before-shed``
so that a restarted controller (or another replica of it) still knows what to restore.

===================  ======================================================================
ActionKind           API calls (``W`` = ``/apis/apps/v1/namespaces/NS/deployments/NAME``)
===================  ======================================================================
``SERVICE_SHED``     ``PATCH W`` (merge, ``resourceVersion``-guarded): the annotation = the
                     current ``spec.replicas``; then ``PATCH W/scale`` ``spec.replicas: 0``
``THROTTLE`` at f    the same, to ``ceil(f × full)`` replicas (at least 1 for f > 0)
``SERVICE_RESTORE``  ``PATCH W/scale`` back to ``full`` (or ``ceil(value × full)`` when the
                     restore names a level below 1), then the annotation removed once full
===================  ======================================================================

The annotation is written *before* the scale, so a crash in between leaves a record and an
unchanged workload, never a scaled-down workload with no record. Repeating an action finds the
workload already as wanted and sends nothing (idempotent). A restore with no record and zero
replicas is refused: wattwise does not guess a size it never saw. Readings per service:
``available``, 1 while ``status.readyReplicas`` ≥ 1, with the replica counts as tags; and
``throttle_frac``, replicas over the full count (0 shed, 1 full).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from wattwise.model.values import Action, ActionKind, Quality, Reading

BEFORE_ANNOTATION = "wattwise.io/replicas-before-shed"
_MERGE_PATCH = "application/merge-patch+json"
WorkloadKind = Literal["deployment", "statefulset"]
Request = Callable[[str, str, Any, str], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class WorkloadRef:
    """The Deployment or StatefulSet that carries one site service."""

    kind: WorkloadKind
    namespace: str
    name: str

    @property
    def path(self) -> str:
        """API path of the workload (``/apis/apps/v1/namespaces/NS/deployments/NAME``)."""
        return f"/apis/apps/v1/namespaces/{quote(self.namespace)}/{self.kind}s/{quote(self.name)}"

    def describe(self) -> str:
        """``deployment shop/web``."""
        return f"{self.kind} {self.namespace}/{self.name}"


class ServiceRefused(Exception):
    """The action cannot be applied to this service as it stands (no record, no level)."""


def wanted_replicas(kind: ActionKind, level_frac: float | None, full: int) -> int:
    """Replicas a service should run after ``kind`` at ``level_frac`` of its ``full`` count.

    >>> wanted_replicas(ActionKind.THROTTLE, 0.5, 5), wanted_replicas(ActionKind.SERVICE_SHED, None, 5)
    (3, 0)
    >>> wanted_replicas(ActionKind.SERVICE_RESTORE, None, 5), wanted_replicas(ActionKind.SERVICE_RESTORE, 0.3, 5)
    (5, 2)

    Raises:
        ServiceRefused: A throttle with no level, or a level outside 0–1.
    """
    if kind is ActionKind.SERVICE_SHED:
        return 0
    if kind is ActionKind.SERVICE_RESTORE and (level_frac is None or level_frac <= 0.0 or level_frac >= 1.0):
        return full
    if level_frac is None or not 0.0 <= level_frac <= 1.0:
        raise ServiceRefused(f"throttle level must be 0–1, not {level_frac}")
    return math.ceil(level_frac * full - 1e-9)


def full_replicas(workload: Mapping[str, Any]) -> tuple[int, int, bool]:
    """``(current, full, recorded)``: ``spec.replicas``, the full count, whether it is recorded."""
    current = int(workload.get("spec", {}).get("replicas", 1))
    recorded = ((workload.get("metadata") or {}).get("annotations") or {}).get(BEFORE_ANNOTATION)
    if recorded is None:
        return current, current, False
    return current, int(recorded), True


def service_readings(service_id: str, workload: Mapping[str, Any], t_s: float) -> list[Reading]:
    """``available`` (1 while a replica is ready) and ``throttle_frac`` (replicas / full count).

    ``throttle_frac`` is the level the controller plans from: 0 when shed, ``f`` when
    throttled, 1 when full. Without it a shed service would read as still at full level and
    its restore would never be planned.
    """
    current, full, _ = full_replicas(workload)
    ready = int((workload.get("status") or {}).get("readyReplicas") or 0)
    tags = (("full", str(full)), ("ready", str(ready)), ("replicas", str(current)))
    level = min(current / full, 1.0) if full > 0 else 0.0
    return [
        Reading(service_id, "available", float(ready >= 1), t_s, Quality.GOOD, tags),
        Reading(service_id, "throttle_frac", level, t_s, Quality.GOOD),
    ]


class ScaledServices:
    """Shed, restore, throttle and read the services mapped to Deployments/StatefulSets.

    Args:
        services: Site service id → its workload.
        request: The driver's request function ``(method, path, body, content_type)``; raises
            the driver's ``ApiStatus`` on 4xx.
    """

    def __init__(self, services: Mapping[str, WorkloadRef], request: Request) -> None:
        self.services = dict(services)
        self.request = request

    async def apply(self, action: Action) -> str:
        """Scale the service's workload as ``action`` asks; returns what was done.

        Raises:
            ServiceRefused: Nothing to restore to, or a bad level.
        """
        ref = self.services[action.target_id]
        workload = await self.request("GET", ref.path, None, "application/json")
        current, full, recorded = full_replicas(workload)
        want = wanted_replicas(action.kind, action.value, full)
        if action.kind is ActionKind.SERVICE_RESTORE and not recorded and current == 0:
            raise ServiceRefused(f"{ref.describe()} has 0 replicas and no {BEFORE_ANNOTATION} to restore")
        done: list[str] = []
        if want < full and not recorded:
            # Record first: a crash between the two writes leaves a record, never a lost size.
            meta = {"resourceVersion": workload["metadata"].get("resourceVersion")}
            patch = {"metadata": {**meta, "annotations": {BEFORE_ANNOTATION: str(full)}}}
            await self.request("PATCH", ref.path, patch, _MERGE_PATCH)
            done.append(f"recorded {full} replicas")
        if want != current:
            await self.request("PATCH", f"{ref.path}/scale", {"spec": {"replicas": want}}, _MERGE_PATCH)
            done.append(f"scaled {current} -> {want}")
        if want >= full and recorded:
            patch = {"metadata": {"annotations": {BEFORE_ANNOTATION: None}}}
            await self.request("PATCH", ref.path, patch, _MERGE_PATCH)
            done.append("record removed")
        return f"{ref.describe()}: {', '.join(done) or f'already at {want} of {full}'}"

    async def read_one(self, service_id: str, t_s: float) -> list[Reading]:
        """The ``available`` and ``throttle_frac`` readings of one mapped service."""
        workload = await self.request("GET", self.services[service_id].path, None, "application/json")
        return service_readings(service_id, workload, t_s)
