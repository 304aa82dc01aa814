"""KubernetesDriver: cordon, taint and drain nodes through the API server, over plain httpx.

Plain HTTP rather than the official client keeps one HTTP stack in the project (httpx, with
``MockTransport`` as the test seam) and avoids a 20 MB dependency for five endpoints.

Action mapping (``target_id`` is a node name, or ``namespace/pod`` for a pod):

======================  ===============================================================
ActionKind              API calls
======================  ===============================================================
``NODE_CORDON``         ``PATCH /api/v1/nodes/N`` (merge patch): ``spec.unschedulable``
                        and wattwise's taint (``power.wattwise.io/degraded:NoSchedule``);
                        ``PATCH .../N/status``: NodeCondition ``WattwisePowerDegraded``
``NODE_DRAIN``          cordon, then ``POST .../pods/P/eviction`` (policy/v1) for every pod
                        on N except DaemonSet and mirror pods
``NODE_RESUME``         ``PATCH``: ``unschedulable: false``, wattwise's taint removed, the
                        condition set ``False``
``WORKLOAD_MIGRATE``    evict ``namespace/pod``; its controller re-creates it elsewhere
``SERVICE_SHED``,       scale the service's Deployment/StatefulSet (``target_id`` is a site
``SERVICE_RESTORE``,    service id): see :mod:`~wattwise.drivers.kubernetes_services`
``THROTTLE``
======================  ===============================================================

Node changes are fenced by the API server itself: the driver records the sender's fencing
token in the node annotation ``power.wattwise.io/fencing-token`` in the same
``resourceVersion``-guarded patch, and refuses (``fenced: token N < M``) a node action whose
token is lower than the one recorded. Pod evictions carry no token: put a
:class:`~wattwise.control.fencing.FencedDriver` in front for ``WORKLOAD_MIGRATE``.

Evictions respect PodDisruptionBudgets: the API server answers 429 when one would be
violated. A drain that met a PDB returns ``ok=False`` naming the budgets, having evicted what
it could; repeating it later continues (pods already gone are skipped). Node patches carry
``metadata.resourceVersion``, so a concurrent change gives 409 and the driver re-reads once.
Readings per node: ``available`` = Ready and schedulable; the true pressure conditions, the
Ready status and schedulability are tags; per mapped service, ``available`` (a replica ready).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from wattwise.drivers.kubernetes_services import ScaledServices, ServiceRefused, WorkloadRef
from wattwise.drivers.retry import RetryPolicy, call_with_retries
from wattwise.errors import DeviceAuthError, DeviceProtocolError, DeviceUnavailable
from wattwise.model.values import Action, ActionKind, ActionResult, Quality, Reading

logger = logging.getLogger(__name__)

_SERVICE_KINDS = frozenset({ActionKind.SERVICE_SHED, ActionKind.SERVICE_RESTORE, ActionKind.THROTTLE})
_SUPPORTED = frozenset(
    {ActionKind.NODE_CORDON, ActionKind.NODE_DRAIN, ActionKind.NODE_RESUME, ActionKind.WORKLOAD_MIGRATE}
    | _SERVICE_KINDS
)
_MERGE_PATCH = "application/merge-patch+json"
_STRATEGIC_PATCH = "application/strategic-merge-patch+json"
DEFAULT_TAINT_KEY = "power.wattwise.io/degraded"
DEFAULT_CONDITION = "WattwisePowerDegraded"
FENCING_ANNOTATION = "power.wattwise.io/fencing-token"


class Fenced(Exception):
    """The node was last changed by a leader with a higher fencing token."""


class ApiStatus(Exception):
    """The API server answered a request with a non-success ``Status`` (4xx other than auth)."""

    def __init__(self, code: int, body: Mapping[str, Any]) -> None:
        self.code = code
        self.body = dict(body)
        super().__init__(f"HTTP {code}: {body.get('message', '')}")

    def causes(self) -> list[str]:
        """Messages of ``details.causes`` (for 429: the PodDisruptionBudgets in the way)."""
        details = self.body.get("details") or {}
        return [str(c.get("message", "")) for c in details.get("causes", [])]


class KubernetesDriver:
    """One Kubernetes cluster's nodes as a wattwise Driver.

    Args:
        cluster_id: Site id of the cluster.
        base_url: API server URL, e.g. ``https://10.0.0.1:6443``.
        token: Bearer token (a ServiceAccount's), or ``None``.
        node_ids: Site id of each Kubernetes node name; others keep their node name.
        taint_key: Key of the taint wattwise puts on cordoned nodes.
        condition_type: NodeCondition wattwise sets True on cordon and False on resume.
        client: An ``httpx.AsyncClient`` (tests inject a ``MockTransport``); one is made if absent.
        retry: Timeout, attempts and back-off per request.
        now_s: Time source for reading timestamps.
        services: Site service id → the Deployment or StatefulSet that carries it.
    """

    name = "kubernetes"

    def __init__(
        self,
        cluster_id: str,
        base_url: str,
        token: str | None = None,
        node_ids: Mapping[str, str] | None = None,
        taint_key: str = DEFAULT_TAINT_KEY,
        condition_type: str = DEFAULT_CONDITION,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        now_s: Callable[[], float] = time.time,
        services: Mapping[str, WorkloadRef] | None = None,
    ) -> None:
        self.cluster_id = cluster_id
        self.services = ScaledServices(services or {}, self._request)
        self.base_url = base_url.rstrip("/")
        self.node_ids = dict(node_ids or {})
        self._node_names = {v: k for k, v in self.node_ids.items()}
        self.taint_key = taint_key
        self.condition_type = condition_type
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = client or httpx.AsyncClient(base_url=self.base_url, headers=headers)
        self.retry = retry or RetryPolicy(timeout_s=5.0, attempts=2)
        self.now_s = now_s

    # ---- the one I/O boundary -------------------------------------------------------------
    async def _request_once(self, method: str, path: str, body: Any, content_type: str) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs = {"content": json.dumps(body), "headers": {"Content-Type": content_type}}
        try:
            resp = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise DeviceUnavailable(f"{method} {path}: {err}", device_id=self.cluster_id, url=self.base_url) from err
        if resp.status_code in {401, 403}:
            raise DeviceAuthError(f"{method} {path}: HTTP {resp.status_code}", device_id=self.cluster_id)
        if resp.status_code >= 500:
            raise DeviceUnavailable(f"{method} {path}: HTTP {resp.status_code}", device_id=self.cluster_id)
        try:
            data = resp.json()
        except ValueError as err:
            raise DeviceProtocolError(f"{method} {path}: not JSON", device_id=self.cluster_id) from err
        if not isinstance(data, dict):
            raise DeviceProtocolError(f"{method} {path}: not a JSON object", device_id=self.cluster_id)
        if resp.status_code >= 400:
            raise ApiStatus(resp.status_code, data)
        return resp.status_code, data

    async def _request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any]:
        _, data = await call_with_retries(
            lambda: self._request_once(method, path, body, content_type), self.retry,
            what=f"{method} {path}", device_id=self.cluster_id, url=self.base_url,
        )  # fmt: skip
        return dict(data)

    # ---- Driver protocol ------------------------------------------------------------------
    def supports(self, kind: ActionKind) -> bool:
        """Node cordon/drain/resume, pod migration (eviction), service shed/restore/throttle (scale)."""
        return kind in _SUPPORTED

    async def read(self) -> list[Reading]:
        """One ``available`` reading per node (its conditions as tags) and per mapped service."""
        try:
            nodes = await self._request("GET", "/api/v1/nodes")
        except ApiStatus as err:
            raise DeviceProtocolError(f"GET /api/v1/nodes: {err}", device_id=self.cluster_id) from err
        t_s = self.now_s()
        readings = []
        for node in nodes.get("items", []):
            name = str(node["metadata"]["name"])
            tags = node_tags(node)
            available = float(dict(tags)["ready"] == "True" and dict(tags)["schedulable"] == "true")
            readings.append(Reading(self.node_ids.get(name, name), "available", available, t_s, tags=tags))
        for service_id in self.services.services:
            try:
                readings += await self.services.read_one(service_id, t_s)
            except ApiStatus as err:  # e.g. the workload was deleted: the service is down, say why
                tags = (("error", str(err)),)
                readings.append(Reading(service_id, "available", 0.0, t_s, Quality.BAD, tags))
        return readings

    async def apply(self, action: Action) -> ActionResult:
        """Apply one action; refusals (404, 409, a PDB's 429) come back as ``ok=False``."""
        if action.kind not in _SUPPORTED:
            return self._result(action, False, f"kubernetes cannot {action.kind}")
        try:
            if action.kind in _SERVICE_KINDS:
                ok, message = await self._service_action(action)
            elif action.kind is ActionKind.WORKLOAD_MIGRATE:
                ok, message = await self._migrate(action.target_id)
            else:
                ok, message = await self._node_action(action)
        except (ApiStatus, Fenced, ServiceRefused) as err:
            ok, message = False, str(err)
        log = logger.info if ok else logger.warning
        log("kubernetes %s %s: %s", action.kind, action.target_id, message)
        return self._result(action, ok, message)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def _service_action(self, action: Action) -> tuple[bool, str]:
        if action.target_id not in self.services.services:
            return False, f"{action.target_id!r} is not a service mapped to a workload of {self.cluster_id}"
        return True, await self.services.apply(action)

    # ---- nodes ----------------------------------------------------------------------------
    async def _node_action(self, action: Action) -> tuple[bool, str]:
        name = self._node_names.get(action.target_id, action.target_id)
        cordon = action.kind is not ActionKind.NODE_RESUME
        changed = await self._set_cordon(name, cordon, action.fencing_token)
        if changed:
            await self._set_condition(name, cordon, action.reason)
        state = (
            ("cordoned" if cordon else "uncordoned") if changed else ("already cordoned" if cordon else "in service")
        )
        if action.kind is not ActionKind.NODE_DRAIN:
            return True, state
        return await self._evict_node_pods(name)

    async def _set_cordon(self, name: str, cordon: bool, token: int | None) -> bool:
        """Patch ``unschedulable`` and our taint; returns whether anything changed.

        Raises:
            Fenced: The node carries a higher fencing token than ``token``.
        """
        for attempt in (1, 2):
            node = await self._request("GET", f"/api/v1/nodes/{quote(name)}")
            meta, spec = node.get("metadata", {}), node.get("spec", {})
            seen = (meta.get("annotations") or {}).get(FENCING_ANNOTATION)
            if token is not None and seen is not None and token < int(seen):
                raise Fenced(f"fenced: token {token} < {seen}")
            taints = [t for t in spec.get("taints", []) if t.get("key") != self.taint_key]
            if cordon:
                taints.append({"key": self.taint_key, "value": "true", "effect": "NoSchedule"})
            same = bool(spec.get("unschedulable", False)) == cordon and taints == spec.get("taints", [])
            # A newer leader records its token even when the node is already as it wants it:
            # otherwise the deposed leader's equal token would still pass.
            bump = token is not None and (seen is None or token > int(seen))
            if same and not bump:
                return False
            # resourceVersion makes the patch a compare-and-set: the token check above and
            # the write below are atomic at the API server (409 if the node changed between).
            patch: dict[str, Any] = {"metadata": {"resourceVersion": meta.get("resourceVersion")}}
            if bump:
                patch["metadata"]["annotations"] = {FENCING_ANNOTATION: str(token)}
            if not same:
                patch["spec"] = {"unschedulable": cordon, "taints": taints or None}
            try:
                await self._request("PATCH", f"/api/v1/nodes/{quote(name)}", patch, _MERGE_PATCH)
            except ApiStatus as err:
                if err.code == 409 and attempt == 1:
                    continue  # somebody changed the node between our read and our patch: re-read
                raise
            return not same
        return True  # unreachable: the loop returns or raises

    async def _set_condition(self, name: str, degraded: bool, reason: str) -> None:
        """Report the power state as a NodeCondition (the node-problem-detector convention).

        ``conditions`` merges by ``type`` under a strategic merge patch, so other conditions
        (Ready, the kubelet's pressures) are left alone.
        """
        now = datetime.fromtimestamp(self.now_s(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {
            "type": self.condition_type,
            "status": "True" if degraded else "False",
            "reason": "WattwiseCordoned" if degraded else "WattwiseResumed",
            "message": reason[:200] or "wattwise",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        patch = {"status": {"conditions": [condition]}}
        await self._request("PATCH", f"/api/v1/nodes/{quote(name)}/status", patch, _STRATEGIC_PATCH)

    async def _evict_node_pods(self, name: str) -> tuple[bool, str]:
        selector = quote(f"spec.nodeName={name}")
        pods = await self._request("GET", f"/api/v1/pods?fieldSelector={selector}")
        evicted: list[str] = []
        blocked: list[str] = []
        skipped = 0
        for pod in pods.get("items", []):
            if not evictable(pod):
                skipped += 1
                continue
            meta = pod["metadata"]
            ok, why = await self._evict(str(meta["namespace"]), str(meta["name"]))
            (evicted if ok else blocked).append(f"{meta['namespace']}/{meta['name']}" + ("" if ok else f" ({why})"))
        summary = f"evicted {len(evicted)}, skipped {skipped} (DaemonSet/mirror/finished)"
        if blocked:
            return False, f"drain of {name} blocked: {'; '.join(blocked)}; {summary}"
        return True, f"drained {name}: {summary}"

    async def _evict(self, namespace: str, pod: str) -> tuple[bool, str]:
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
        try:
            await self._request("POST", f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/eviction", body)
        except ApiStatus as err:
            if err.code == 404:
                return True, "already gone"
            if err.code == 429:
                return False, "; ".join(err.causes()) or str(err.body.get("message", "429"))
            raise
        return True, "evicted"

    async def _migrate(self, target: str) -> tuple[bool, str]:
        namespace, _, pod = target.rpartition("/")
        ok, why = await self._evict(namespace or "default", pod)
        return ok, f"pod {namespace or 'default'}/{pod}: {why}"

    def _result(self, action: Action, ok: bool, message: str) -> ActionResult:
        return ActionResult(command_id=action.command_id, ok=ok, message=message, t_s=self.now_s())


def node_tags(node: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Ready status, schedulability and the pressure conditions that are true, as sorted tags."""
    conditions = {str(c.get("type")): str(c.get("status")) for c in node.get("status", {}).get("conditions", [])}
    pressures = sorted(k for k, v in conditions.items() if k != "Ready" and v == "True")
    schedulable = not node.get("spec", {}).get("unschedulable", False)
    return (
        ("conditions", ",".join(pressures)),
        ("ready", conditions.get("Ready", "Unknown")),
        ("schedulable", str(schedulable).lower()),
    )


def evictable(pod: Mapping[str, Any]) -> bool:
    """Whether a drain should evict the pod (kubectl drain's rules, without --force)."""
    meta = pod.get("metadata", {})
    if any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences", [])):
        return False  # the DaemonSet controller would put it straight back
    if "kubernetes.io/config.mirror" in meta.get("annotations", {}):
        return False  # static pod: the kubelet owns it
    if meta.get("deletionTimestamp"):
        return False
    return pod.get("status", {}).get("phase") not in {"Succeeded", "Failed"}
