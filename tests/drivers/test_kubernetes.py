"""KubernetesDriver against responses recorded from real API servers (tests/fixtures/kubernetes).

A small replay server (``httpx.MockTransport``) serves the recorded NodeList and PodList,
applies the driver's node merge patches to the recorded Node (RFC 7386, as the API server
does), and answers evictions with the recorded 201 or, for pods the test marks as protected
by a PodDisruptionBudget, the recorded 429. The README there names every source.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from conftest import REPO
from wattwise.drivers.base import Driver
from wattwise.drivers.kubernetes import DEFAULT_TAINT_KEY, FENCING_ANNOTATION, KubernetesDriver, evictable
from wattwise.drivers.retry import RetryPolicy
from wattwise.errors import DeviceAuthError, DeviceUnavailable
from wattwise.model.values import Action, ActionKind

FIX = REPO / "tests" / "fixtures" / "kubernetes"
NODE_A = "ip-10-0-10-170.ec2.internal"  # runs 2 coredns (ReplicaSet) + aws-node, kube-proxy (DaemonSet)
NODE_B = "ip-10-0-20-143.ec2.internal"  # runs only DaemonSet pods


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIX / name).read_text())
    return data


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class ReplayApiServer:
    """Serves the recorded documents and keeps the state the driver's requests change."""

    def __init__(self, pdb_protected: frozenset[str] = frozenset(), status: int | None = None) -> None:
        self.nodes = {n["metadata"]["name"]: n for n in load("eks-1.31-nodelist.json")["items"]}
        self.pods = load("eks-1.31-kube-system-podlist.json")["items"]
        self.pdb_protected = pdb_protected
        self.status = status
        self.requests: list[tuple[str, str, str, Any]] = []
        self.conflicts_left = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = unquote(request.url.path)
        self.requests.append((request.method, path, request.headers.get("content-type", ""), body))
        if self.status is not None:
            return httpx.Response(self.status, json={"kind": "Status", "code": self.status})
        if request.method == "GET" and path == "/api/v1/nodes":
            return httpx.Response(200, json={**load("eks-1.31-nodelist.json"), "items": list(self.nodes.values())})
        if path.startswith("/api/v1/nodes/") and path.endswith("/status"):
            return self._node_status(path.split("/")[-2], body)
        if path.startswith("/api/v1/nodes/"):
            return self._node(request.method, path.rsplit("/", 1)[1], body)
        if request.method == "GET" and path == "/api/v1/pods":
            node = unquote(request.url.params["fieldSelector"]).removeprefix("spec.nodeName=")
            items = [p for p in self.pods if p["spec"].get("nodeName") == node]
            return httpx.Response(200, json={**load("eks-1.31-kube-system-podlist.json"), "items": items})
        if request.method == "POST" and path.endswith("/eviction"):
            return self._evict(path.split("/")[-2])
        return httpx.Response(404, json={"kind": "Status", "code": 404})

    def _node(self, method: str, name: str, patch: Any) -> httpx.Response:
        if name not in self.nodes:
            return httpx.Response(404, json={"kind": "Status", "status": "Failure", "code": 404})
        if method == "PATCH":
            if self.conflicts_left:
                self.conflicts_left -= 1
                self.nodes[name]["metadata"]["resourceVersion"] += "0"  # someone else wrote meanwhile
                return httpx.Response(409, json={"kind": "Status", "status": "Failure", "code": 409})
            patched = merge_patch(self.nodes[name], patch)
            self.nodes[name] = patched
        return httpx.Response(200, json=self.nodes[name])

    def _node_status(self, name: str, patch: Any) -> httpx.Response:
        """Strategic merge of ``status.conditions`` by ``type`` (its patchMergeKey)."""
        conditions = self.nodes[name]["status"]["conditions"]
        for new in patch["status"]["conditions"]:
            conditions[:] = [c for c in conditions if c["type"] != new["type"]] + [new]
        return httpx.Response(200, json=self.nodes[name])

    def _evict(self, pod: str) -> httpx.Response:
        if pod in self.pdb_protected:
            return httpx.Response(429, json=load("eviction-429-pdb.json"))
        before = len(self.pods)
        self.pods = [p for p in self.pods if p["metadata"]["name"] != pod]
        if len(self.pods) == before:
            return httpx.Response(404, json={"kind": "Status", "code": 404})
        return httpx.Response(201, json=load("eviction-201.json"))


def make(server: ReplayApiServer, **kwargs: Any) -> KubernetesDriver:
    client = httpx.AsyncClient(base_url="https://api.test", transport=httpx.MockTransport(server.handler))
    return KubernetesDriver("k8s-1", "https://api.test", client=client, **kwargs)


def act(kind: ActionKind, target: str, token: int | None = None) -> Action:
    return Action(
        kind=kind, target_id=target, reason="feed B predicted overload", decision_id="d1", fencing_token=token
    )


async def test_read_real_nodes() -> None:
    driver = make(ReplayApiServer(), node_ids={NODE_A: "srv-a"})
    assert isinstance(driver, Driver)
    readings = {r.device_id: r for r in await driver.read()}
    assert set(readings) == {"srv-a", NODE_B}
    assert readings["srv-a"].value == 1.0
    assert dict(readings["srv-a"].tags) == {"conditions": "", "ready": "True", "schedulable": "true"}


async def test_node_conditions_make_a_node_unavailable() -> None:
    """NOT a recording: the recorded node with its Ready condition flipped to Unknown."""
    server = ReplayApiServer()
    conditions = server.nodes[NODE_B]["status"]["conditions"]
    next(c for c in conditions if c["type"] == "Ready")["status"] = "Unknown"
    next(c for c in conditions if c["type"] == "DiskPressure")["status"] = "True"
    readings = {r.device_id: r for r in await make(server).read()}
    assert readings[NODE_B].value == 0.0
    assert dict(readings[NODE_B].tags)["conditions"] == "DiskPressure"


async def test_cordon_patches_unschedulable_and_taint_then_resume_undoes_it() -> None:
    server = ReplayApiServer()
    driver = make(server)
    result = await driver.apply(act(ActionKind.NODE_CORDON, NODE_A))
    assert result.ok and result.message == "cordoned"
    method, path, ctype, body = next(r for r in server.requests if r[0] == "PATCH")
    assert (path, ctype) == (f"/api/v1/nodes/{NODE_A}", "application/merge-patch+json")
    assert body["metadata"]["resourceVersion"] == "2161"  # the recorded node's version: optimistic lock
    assert body["spec"] == {
        "unschedulable": True,
        "taints": [{"key": DEFAULT_TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
    }
    method, path, ctype, body = next(r for r in server.requests if r[1].endswith("/status"))
    assert (method, ctype) == ("PATCH", "application/strategic-merge-patch+json")
    (condition,) = body["status"]["conditions"]
    assert condition["type"] == "WattwisePowerDegraded" and condition["status"] == "True"
    assert condition["message"] == "feed B predicted overload"
    readings = {r.device_id: r for r in await driver.read()}
    assert {k: r.value for k, r in readings.items()} == {NODE_A: 0.0, NODE_B: 1.0}
    assert dict(readings[NODE_A].tags)["conditions"] == "WattwisePowerDegraded"
    assert len(server.nodes[NODE_A]["status"]["conditions"]) == 5  # the kubelet's four are kept
    assert (await driver.apply(act(ActionKind.NODE_CORDON, NODE_A))).message == "already cordoned"
    resumed = await driver.apply(act(ActionKind.NODE_RESUME, NODE_A))
    assert resumed.ok and resumed.message == "uncordoned"
    assert "taints" not in server.nodes[NODE_A]["spec"] and not server.nodes[NODE_A]["spec"]["unschedulable"]
    assert server.nodes[NODE_A]["status"]["conditions"][-1]["status"] == "False"
    assert (await driver.apply(act(ActionKind.NODE_RESUME, NODE_A))).message == "in service"


async def test_node_actions_are_fenced_by_a_node_annotation() -> None:
    server = ReplayApiServer()
    driver = make(server)
    assert (await driver.apply(act(ActionKind.NODE_CORDON, NODE_A, token=7))).ok
    patch = next(r[3] for r in server.requests if r[0] == "PATCH" and not r[1].endswith("/status"))
    assert patch["metadata"] == {"resourceVersion": "2161", "annotations": {FENCING_ANNOTATION: "7"}}
    stale = await driver.apply(act(ActionKind.NODE_RESUME, NODE_A, token=5))
    assert not stale.ok and stale.message == "fenced: token 5 < 7"
    assert server.nodes[NODE_A]["spec"]["unschedulable"] is True  # the deposed leader changed nothing
    # A new leader (9) re-cordons a node that is already cordoned: its token is recorded anyway,
    # so the deposed leader (7) can no longer act on it with its equal-to-recorded token.
    again = await driver.apply(act(ActionKind.NODE_CORDON, NODE_A, token=9))
    assert again.ok and again.message == "already cordoned"
    assert server.nodes[NODE_A]["metadata"]["annotations"][FENCING_ANNOTATION] == "9"
    assert (await driver.apply(act(ActionKind.NODE_RESUME, NODE_A, token=7))).message == "fenced: token 7 < 9"
    newer = await driver.apply(act(ActionKind.NODE_RESUME, NODE_A, token=10))
    assert newer.ok and server.nodes[NODE_A]["metadata"]["annotations"][FENCING_ANNOTATION] == "10"


async def test_cordon_rereads_after_a_conflict() -> None:
    server = ReplayApiServer()
    server.conflicts_left = 1
    result = await make(server).apply(act(ActionKind.NODE_CORDON, NODE_A))
    assert result.ok
    patches = [r for r in server.requests if r[0] == "PATCH" and not r[1].endswith("/status")]
    assert [p[3]["metadata"]["resourceVersion"] for p in patches] == ["2161", "21610"]


async def test_drain_evicts_controller_pods_and_skips_daemonsets() -> None:
    server = ReplayApiServer()
    result = await make(server).apply(act(ActionKind.NODE_DRAIN, NODE_A))
    assert result.ok, result.message
    assert result.message == f"drained {NODE_A}: evicted 2, skipped 2 (DaemonSet/mirror/finished)"
    evictions = [r for r in server.requests if r[0] == "POST"]
    assert sorted(p.split("/")[-2] for _, p, _, _ in evictions) == [
        "coredns-789f8477df-knmwr",
        "coredns-789f8477df-psws6",
    ]
    _, path, ctype, body = evictions[0]
    assert path.startswith("/api/v1/namespaces/kube-system/pods/") and ctype == "application/json"
    assert body["apiVersion"] == "policy/v1" and body["kind"] == "Eviction"
    assert body["metadata"]["namespace"] == "kube-system"
    assert server.nodes[NODE_A]["spec"]["unschedulable"] is True  # cordoned first


async def test_drain_blocked_by_a_pdb_reports_it_and_can_be_repeated() -> None:
    server = ReplayApiServer(pdb_protected=frozenset({"coredns-789f8477df-psws6"}))
    driver = make(server)
    blocked = await driver.apply(act(ActionKind.NODE_DRAIN, NODE_A))
    assert not blocked.ok
    assert "kube-system/coredns-789f8477df-psws6" in blocked.message
    assert "The disruption budget devops-tools-mongodb-secondary needs 1 healthy pods and has 1 currently" in (
        blocked.message
    )
    assert "evicted 1" in blocked.message
    server.pdb_protected = frozenset()  # the budget recovered: a replacement pod became ready
    again = await driver.apply(act(ActionKind.NODE_DRAIN, NODE_A))
    assert again.ok and "evicted 1" in again.message


async def test_migrate_evicts_one_pod_and_missing_ones_are_gone_already() -> None:
    server = ReplayApiServer()
    driver = make(server)
    moved = await driver.apply(act(ActionKind.WORKLOAD_MIGRATE, "kube-system/coredns-789f8477df-knmwr"))
    assert moved.ok and moved.message.endswith("evicted")
    gone = await driver.apply(act(ActionKind.WORKLOAD_MIGRATE, "kube-system/coredns-789f8477df-knmwr"))
    assert gone.ok and gone.message.endswith("already gone")


async def test_unknown_node_and_unsupported_kind_are_refusals() -> None:
    driver = make(ReplayApiServer())
    missing = await driver.apply(act(ActionKind.NODE_CORDON, "no-such-node"))
    assert not missing.ok and "404" in missing.message
    assert not (await driver.apply(act(ActionKind.OUTLET_OFF, NODE_A))).ok


@pytest.mark.parametrize(
    ("status", "error"), [(401, DeviceAuthError), (403, DeviceAuthError), (503, DeviceUnavailable)]
)
async def test_http_errors_are_translated_once(status: int, error: type[Exception]) -> None:
    driver = make(ReplayApiServer(status=status), retry=RetryPolicy(timeout_s=1.0, attempts=2, backoff_s=0.0))
    with pytest.raises(error):
        await driver.read()


async def test_unreachable_api_server_is_device_unavailable() -> None:
    driver = KubernetesDriver("k8s-1", "http://127.0.0.1:9", retry=RetryPolicy(timeout_s=1.0, attempts=1))
    with pytest.raises(DeviceUnavailable):
        await driver.read()
    await driver.close()


def test_evictable_follows_kubectl_drain() -> None:
    pods = load("eks-1.31-kube-system-podlist.json")["items"]
    assert [p["metadata"]["name"] for p in pods if evictable(p)] == [
        "coredns-789f8477df-knmwr",
        "coredns-789f8477df-psws6",
    ]
    mirror = copy.deepcopy(pods[2])
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    done = copy.deepcopy(pods[2])
    done["status"]["phase"] = "Succeeded"
    assert not evictable(mirror) and not evictable(done)


def test_fixtures_are_documented() -> None:
    readme = (FIX / "README.md").read_text()
    for path in Path(FIX).glob("*.json"):
        assert path.name in readme, f"{path.name} has no recorded source in README.md"
