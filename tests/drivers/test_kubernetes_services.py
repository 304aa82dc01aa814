"""Services as Deployments: shed, restore and throttle by scale, against a recorded Deployment.

The replay server serves the Deployment recorded from a real API server
(tests/fixtures/kubernetes/deployment-list-nginx.json, source in the README there), applies
the driver's merge patches to it as the API server does (RFC 7386; ``resourceVersion`` checked
and bumped), and answers ``PATCH .../scale``. No recorded ``Scale`` answer was found, so that
answer is request-shape only: the replay server builds it from the Deployment, and the
driver's use of the scale subresource is asserted on what it sends. The replay server also
plays the ReplicaSet controller: after a scale, ``status.readyReplicas`` equals the new count.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from conftest import REPO
from drivers.test_kubernetes import merge_patch
from wattwise.drivers.kubernetes import KubernetesDriver
from wattwise.drivers.kubernetes_services import BEFORE_ANNOTATION, ServiceRefused, WorkloadRef, wanted_replicas
from wattwise.model.values import Action, ActionKind, Quality

FIX = REPO / "tests" / "fixtures" / "kubernetes"
PATH = "/apis/apps/v1/namespaces/default/deployments/nginx-deployment"
WEB = {"svc-web": WorkloadRef("deployment", "default", "nginx-deployment")}


class ReplayDeployments:
    """One recorded Deployment, changed only by the driver's requests."""

    def __init__(self) -> None:
        recorded = json.loads((FIX / "deployment-list-nginx.json").read_text())["items"][0]
        self.deployments = {PATH: copy.deepcopy(recorded)}
        self.requests: list[tuple[str, str, str, Any]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        body: Any = json.loads(request.content) if request.content else {}
        path = unquote(request.url.path)
        self.requests.append((request.method, path, request.headers.get("content-type", ""), body))
        if path == "/api/v1/nodes":
            return httpx.Response(200, json=json.loads((FIX / "eks-1.31-nodelist.json").read_text()))
        base = path.removesuffix("/scale")
        if base not in self.deployments:
            return httpx.Response(404, json={"kind": "Status", "status": "Failure", "code": 404})
        obj = self.deployments[base]
        if request.method == "PATCH" and path.endswith("/scale"):
            return self._scale(obj, body)
        if request.method == "PATCH":
            want = (body.get("metadata") or {}).get("resourceVersion")
            if want is not None and want != obj["metadata"]["resourceVersion"]:
                return httpx.Response(409, json={"kind": "Status", "status": "Failure", "code": 409})
            patch = copy.deepcopy(body)
            patch.get("metadata", {}).pop("resourceVersion", None)
            self.deployments[base] = obj = merge_patch(obj, patch)
            self._bump(obj)
        return httpx.Response(200, json=obj)

    def _scale(self, obj: dict[str, Any], body: Any) -> httpx.Response:
        """NOT a recording: the Scale answer is built here, in the API server's documented shape."""
        replicas = int(body["spec"]["replicas"])
        obj["spec"]["replicas"] = replicas
        obj["status"].update(replicas=replicas, readyReplicas=replicas, availableReplicas=replicas)
        self._bump(obj)
        meta = {k: obj["metadata"][k] for k in ("name", "namespace", "uid", "resourceVersion")}
        scale = {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta, "spec": {"replicas": replicas}}
        return httpx.Response(200, json={**scale, "status": {"replicas": replicas, "selector": "app=nginx"}})

    @staticmethod
    def _bump(obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)

    def sent(self) -> list[tuple[str, str, str, Any]]:
        """The writes (PATCHes) the driver sent."""
        return [r for r in self.requests if r[0] != "GET"]


def make(server: ReplayDeployments, services: dict[str, WorkloadRef] = WEB) -> KubernetesDriver:
    client = httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(server.handler))
    return KubernetesDriver("k8s-1", "https://api.test", client=client, services=services, now_s=lambda: 5.0)


def act(kind: ActionKind, value: float | None = None, target: str = "svc-web") -> Action:
    return Action(kind=kind, target_id=target, value=value, reason="utility lost", decision_id="d1")


def _available(readings: list[Any]) -> tuple[float, dict[str, str]]:
    r = next(r for r in readings if r.device_id == "svc-web" and r.metric == "available")
    return r.value, dict(r.tags)


def _level(readings: list[Any]) -> float:
    """The service's ``throttle_frac``: the level the controller plans restores from."""
    return float(next(r.value for r in readings if r.device_id == "svc-web" and r.metric == "throttle_frac"))


async def test_shed_records_the_count_then_scales_to_zero_and_restore_scales_back() -> None:
    server = ReplayDeployments()
    driver = make(server)
    assert _available(await driver.read()) == (1.0, {"full": "1", "ready": "1", "replicas": "1"})
    shed = await driver.apply(act(ActionKind.SERVICE_SHED, 0.0))
    assert shed.ok and shed.message == "deployment default/nginx-deployment: recorded 1 replicas, scaled 1 -> 0"
    record, scale = server.sent()
    assert record == (
        "PATCH",
        PATH,
        "application/merge-patch+json",
        {"metadata": {"resourceVersion": "283237", "annotations": {BEFORE_ANNOTATION: "1"}}},
    )  # the recorded Deployment's version: the record is a compare-and-set
    assert scale == ("PATCH", f"{PATH}/scale", "application/merge-patch+json", {"spec": {"replicas": 0}})
    annotations = server.deployments[PATH]["metadata"]["annotations"]
    assert annotations == {"deployment.kubernetes.io/revision": "1", BEFORE_ANNOTATION: "1"}
    assert _available(await driver.read())[0] == 0.0
    assert _level(await driver.read()) == 0.0  # shed: the controller will plan its restore

    again = await driver.apply(act(ActionKind.SERVICE_SHED, 0.0))
    assert again.ok and again.message.endswith("already at 0 of 1") and len(server.sent()) == 2

    restore = await driver.apply(act(ActionKind.SERVICE_RESTORE, 1.0))
    assert restore.ok and restore.message.endswith("scaled 0 -> 1, record removed")
    assert server.sent()[2:] == [
        ("PATCH", f"{PATH}/scale", "application/merge-patch+json", {"spec": {"replicas": 1}}),
        ("PATCH", PATH, "application/merge-patch+json", {"metadata": {"annotations": {BEFORE_ANNOTATION: None}}}),
    ]
    assert server.deployments[PATH]["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1"}
    assert _available(await driver.read())[0] == 1.0
    assert _level(await driver.read()) == 1.0
    assert (await driver.apply(act(ActionKind.SERVICE_RESTORE))).message.endswith("already at 1 of 1")


async def test_a_restarted_controller_restores_from_the_annotation() -> None:
    server = ReplayDeployments()
    assert (await make(server).apply(act(ActionKind.SERVICE_SHED))).ok
    fresh = make(server)  # a new driver knows nothing but what the API server holds
    restored = await fresh.apply(act(ActionKind.SERVICE_RESTORE))
    assert restored.ok and server.deployments[PATH]["spec"]["replicas"] == 1


async def test_throttle_scales_to_a_share_of_the_full_count() -> None:
    """NOT a recording: the recorded Deployment with spec.replicas changed from 1 to 4."""
    server = ReplayDeployments()
    server.deployments[PATH]["spec"]["replicas"] = 4
    driver = make(server)
    assert (await driver.apply(act(ActionKind.THROTTLE, 0.5))).message.endswith("recorded 4 replicas, scaled 4 -> 2")
    assert _level(await driver.read()) == 0.5
    assert (await driver.apply(act(ActionKind.THROTTLE, 0.3))).message.endswith("already at 2 of 4")  # ceil(1.2)
    assert (await driver.apply(act(ActionKind.THROTTLE, 0.25))).message.endswith("scaled 2 -> 1")
    assert (await driver.apply(act(ActionKind.SERVICE_SHED))).message.endswith("scaled 1 -> 0")
    assert server.deployments[PATH]["metadata"]["annotations"][BEFORE_ANNOTATION] == "4"  # still the full count
    assert (await driver.apply(act(ActionKind.SERVICE_RESTORE, 0.5))).message.endswith("scaled 0 -> 2")
    full = await driver.apply(act(ActionKind.THROTTLE, 1.0))
    assert full.message.endswith("scaled 2 -> 4, record removed")
    assert BEFORE_ANNOTATION not in server.deployments[PATH]["metadata"]["annotations"]


async def test_statefulsets_are_scaled_through_their_own_path() -> None:
    server = ReplayDeployments()
    path = "/apis/apps/v1/namespaces/db/statefulsets/pg"
    server.deployments[path] = server.deployments.pop(PATH)  # NOT a recording: the Deployment served as one
    driver = make(server, {"svc-db": WorkloadRef("statefulset", "db", "pg")})
    assert (await driver.apply(act(ActionKind.SERVICE_SHED, target="svc-db"))).ok
    assert [r[1] for r in server.sent()] == [path, f"{path}/scale"]


async def test_refusals_are_results() -> None:
    server = ReplayDeployments()
    driver = make(server)
    server.deployments[PATH]["spec"]["replicas"] = 0  # NOT a recording: scaled to 0 by someone else
    nothing = await driver.apply(act(ActionKind.SERVICE_RESTORE))
    assert not nothing.ok and BEFORE_ANNOTATION in nothing.message and server.sent() == []
    unmapped = await driver.apply(act(ActionKind.SERVICE_SHED, target="svc-other"))
    assert not unmapped.ok and "not a service mapped" in unmapped.message
    no_level = await driver.apply(act(ActionKind.THROTTLE, None))
    assert not no_level.ok and "throttle level" in no_level.message
    gone = make(server, {"svc-web": WorkloadRef("deployment", "default", "deleted")})
    missing = await gone.apply(act(ActionKind.SERVICE_SHED))
    assert not missing.ok and "404" in missing.message
    (reading,) = [r for r in await gone.read() if r.device_id == "svc-web"]
    assert reading.value == 0.0 and reading.quality is Quality.BAD


def test_wanted_replicas() -> None:
    assert wanted_replicas(ActionKind.THROTTLE, 0.01, 3) == 1  # a throttled service keeps a replica
    assert wanted_replicas(ActionKind.THROTTLE, 0.0, 3) == 0
    assert wanted_replicas(ActionKind.SERVICE_RESTORE, 1.0, 3) == 3
    with pytest.raises(ServiceRefused):
        wanted_replicas(ActionKind.THROTTLE, 1.5, 3)
