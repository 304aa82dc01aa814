"""Every mutating route × every caller: no token, bad token, expired token, viewer, operator, admin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.api.conftest import Live, bearer, start_live

from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
CALLERS = ("none", "bad", "expired", "viewer", "operator", "admin")


@pytest.fixture(scope="module")
def matrix_live() -> Iterator[Live]:
    lv = start_live()
    try:
        yield lv
    finally:
        lv.server.stop()


def _pending(live: Live, tag: str) -> str:
    action = Action(kind=ActionKind.POWER_CAP, target_id="r00001-s1", value=250.0, reason="matrix", decision_id=tag)
    decision = Decision(policy_name="matrix", status=DecisionStatus.OK, actions=(action,), reasons=("test",))
    return live.backend.propose(decision)[0]


def _request(live: Live, route: str, tag: str) -> tuple[str, str, dict[str, Any] | None]:
    """Concrete (method, path, body) for a route template; each call gets fresh targets."""
    if route == "POST /api/v1/mode":
        return "POST", "/api/v1/mode", {"mode": "dry-run", "note": tag}
    if route == "POST /api/v1/actions/{command_id}/approve":
        return "POST", f"/api/v1/actions/{_pending(live, tag + 'a')}/approve", {"note": tag}
    if route == "POST /api/v1/actions/{command_id}/deny":
        return "POST", f"/api/v1/actions/{_pending(live, tag + 'd')}/deny", {"note": tag}
    if route == "POST /api/v1/devices/{device_id}/maintenance":
        return "POST", "/api/v1/devices/pdu-r00001-a/maintenance", {"on": True, "note": tag}
    if route == "POST /api/v1/what-if":
        return "POST", "/api/v1/what-if", {"lose": ["utility-a"], "note": tag}
    if route == "POST /api/v1/tokens":
        return "POST", "/api/v1/tokens", {"name": f"made-{tag}", "role": "viewer", "ttl_s": 60}
    if route == "DELETE /api/v1/tokens/{name}":
        live.tokens.issue(f"victim-{tag}", live.tokens.records()[0].role)
        return "DELETE", f"/api/v1/tokens/victim-{tag}", None
    raise AssertionError(f"mutating route {route} has no entry in the auth matrix: add one")


ADMIN_ONLY = {"POST /api/v1/tokens", "DELETE /api/v1/tokens/{name}"}


def _routes(live: Live) -> list[str]:
    """Mutating operations as published in the OpenAPI document."""
    spec = httpx.get(f"{live.url}/openapi.json", timeout=10.0).json()
    return sorted(f"{m.upper()} {path}" for path, ops in spec["paths"].items() for m in ops if m.upper() in MUTATING)


def test_every_mutating_route_is_in_the_matrix(matrix_live: Live) -> None:
    routes = _routes(matrix_live)
    assert routes == sorted(ROUTES)
    for i, route in enumerate(routes):
        _request(matrix_live, route, f"probe{i}")  # raises for a route without an entry


def _headers(live: Live, caller: str) -> dict[str, str]:
    if caller == "none":
        return {}
    if caller == "bad":
        return bearer("ww_not-a-real-token-at-all-0000")
    return bearer(live.token[caller])


ROUTES = [
    "POST /api/v1/mode",
    "POST /api/v1/actions/{command_id}/approve",
    "POST /api/v1/actions/{command_id}/deny",
    "POST /api/v1/devices/{device_id}/maintenance",
    "POST /api/v1/what-if",
    "POST /api/v1/tokens",
    "DELETE /api/v1/tokens/{name}",
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", ROUTES)
def test_auth_matrix(matrix_live: Live, route: str, caller: str) -> None:
    tag = f"{caller}-{abs(hash(route)) % 10_000}"
    method, path, body = _request(matrix_live, route, tag)
    with httpx.Client(base_url=matrix_live.url, timeout=10.0) as client:
        before = client.get("/api/v1/journal", headers=bearer(matrix_live.token["admin"])).json()["total"]
        r = client.request(method, path, json=body, headers=_headers(matrix_live, caller))
        journal = client.get("/api/v1/journal", headers=bearer(matrix_live.token["admin"])).json()
    if caller in ("none", "bad", "expired"):
        expected = 401
    elif caller == "viewer" or (caller == "operator" and route in ADMIN_ONLY):
        expected = 403
    else:
        expected = 201 if route == "POST /api/v1/tokens" else 204 if method == "DELETE" else 200
    assert r.status_code == expected, r.text
    if expected >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["status"] == expected
        assert journal["total"] == before, "a refused mutation must not be journaled"
        if expected == 401:
            assert r.headers["www-authenticate"] == "Bearer"
    else:
        newest = journal["items"][0]
        assert journal["total"] == before + 1
        assert newest["actor"] == f"{caller}-user" and newest["role"] == caller


def test_reads_need_a_token(matrix_live: Live) -> None:
    paths = ["/api/v1/status", "/api/v1/headroom", "/api/v1/site", "/api/v1/journal", "/api/v1/plan"]
    with httpx.Client(base_url=matrix_live.url, timeout=10.0) as client:
        for p in paths:
            assert client.get(p).status_code == 401
            assert client.get(p, headers=_headers(matrix_live, "expired")).status_code == 401
            assert client.get(p, headers=_headers(matrix_live, "viewer")).status_code == 200


def test_issued_token_works_and_is_stored_hashed(matrix_live: Live) -> None:
    with httpx.Client(base_url=matrix_live.url, timeout=10.0) as client:
        r = client.post(
            "/api/v1/tokens", json={"name": "fresh-op", "role": "operator"}, headers=bearer(matrix_live.token["admin"])
        )
        secret = r.json()["token"]
        me = client.get("/api/v1/me", headers=bearer(secret)).json()
        listed = client.get("/api/v1/tokens", headers=bearer(matrix_live.token["admin"])).json()
    assert me == {"name": "fresh-op", "role": "operator"}
    assert all(t["token"] is None for t in listed)
    stored = [rec for rec in matrix_live.tokens.records() if rec.name == "fresh-op"]
    assert stored and secret not in repr(stored) and len(stored[0].sha256) == 64
