"""HTTP edge: problem+json without stack traces, rate and size limits, CORS closed, no secrets in logs."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import SecretStr
from tests.api.conftest import DEMO_SITE

from wattwise.api.app import create_app
from wattwise.api.auth import TokenStore
from wattwise.api.limits import ApiLimits
from wattwise.api.schemas import ControllerStatus, Role
from wattwise.api.static_backend import StaticBackend
from wattwise.config import Settings
from wattwise.model.loader import load_site

SITE = load_site(DEMO_SITE)
ADMIN_SECRET = "admin-secret-from-settings-123456"


class BrokenBackend(StaticBackend):
    async def status(self) -> ControllerStatus:
        raise RuntimeError("database password=hunter2 exploded at line 42")


def _client(backend: StaticBackend | None = None, limits: ApiLimits | None = None) -> tuple[httpx.AsyncClient, str]:
    tokens = TokenStore()
    token, _ = tokens.issue("op", Role.OPERATOR)
    app = create_app(
        backend or StaticBackend(SITE), Settings(admin_token=SecretStr(ADMIN_SECRET)), tokens, limits=limits
    )
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://api"
    )
    return client, token


async def test_unhandled_error_is_a_bare_problem(caplog: pytest.LogCaptureFixture) -> None:
    client, token = _client(BrokenBackend(SITE))
    with caplog.at_level(logging.ERROR, logger="wattwise.api.problems"):
        async with client:
            r = await client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {
        "type": "about:blank",
        "title": "Internal server error",
        "status": 500,
        "detail": "",
        "instance": "/api/v1/status",
    }
    assert "Traceback" not in r.text and "hunter2" not in r.text
    assert any("unhandled error on GET /api/v1/status" in rec.getMessage() for rec in caplog.records)


async def test_settings_admin_token_seeds_an_admin() -> None:
    client, _ = _client()
    async with client:
        r = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
    assert r.json() == {"name": "admin", "role": "admin"}


async def test_rate_limit_answers_429_with_retry_after() -> None:
    client, token = _client(limits=ApiLimits(rate_per_s=0.5, burst=3))
    async with client:
        codes = [(await client.get("/healthz")).status_code for _ in range(5)]
        r = await client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.headers["content-type"] == "application/problem+json"


async def test_body_size_limit_with_and_without_content_length() -> None:
    client, token = _client(limits=ApiLimits(max_body_bytes=200))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    big = b'{"mode": "armed", "note": "' + b"x" * 400 + b'"}'

    async def chunks() -> object:
        for i in range(0, len(big), 50):
            yield big[i : i + 50]

    async with client:
        sized = await client.post("/api/v1/mode", content=big, headers=headers)
        streamed = await client.post("/api/v1/mode", content=chunks(), headers=headers)  # type: ignore[arg-type]
        small = await client.post("/api/v1/mode", json={"mode": "dry-run"}, headers=headers)
    assert sized.status_code == 413 and streamed.status_code == 413
    assert "transfer-encoding" not in sized.request.headers and "content-length" not in streamed.request.headers
    assert small.status_code == 200 and small.json()["mode"] == "dry-run"


async def test_cors_closed_by_default_open_when_configured() -> None:
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    closed, _ = _client()
    opened, _ = _client(limits=ApiLimits(cors_origins=("https://ops.example",)))
    async with closed, opened:
        r1 = await closed.options("/api/v1/mode", headers=preflight)
        r2 = await opened.options("/api/v1/mode", headers={**preflight, "Origin": "https://ops.example"})
        r3 = await opened.options("/api/v1/mode", headers=preflight)
    assert "access-control-allow-origin" not in r1.headers
    assert r2.headers["access-control-allow-origin"] == "https://ops.example"
    assert "access-control-allow-origin" not in r3.headers


async def test_security_headers_and_unknown_query_rejected() -> None:
    client, token = _client()
    async with client:
        page = await client.get("/?utm_source=wallboard")
        typo = await client.get("/api/v1/headroom?max_pdu=3", headers={"Authorization": f"Bearer {token}"})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert typo.status_code == 422 and "max_pdu" in typo.json()["detail"]


async def test_tokens_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    client, token = _client()
    with caplog.at_level(logging.DEBUG):
        async with client:
            await client.post(
                "/api/v1/tokens", json={"name": "new", "role": "viewer"}, headers={"Authorization": f"Bearer {token}"}
            )
            issued = await client.post(
                "/api/v1/tokens",
                json={"name": "new", "role": "viewer"},
                headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
            )
            await client.post("/api/v1/mode", json={"mode": "armed"}, headers={"Authorization": f"Bearer {token}"})
            await client.get("/api/v1/status", headers={"Authorization": "Bearer wrong-guess-0123456789"})
    secret = issued.json()["token"]
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "mode armed requested by op" in logged  # logging works...
    for s in (token, ADMIN_SECRET, secret, "wrong-guess-0123456789"):  # ...and carries no secret
        assert s not in logged


async def test_metrics_app_mounts_at_metrics() -> None:
    from prometheus_client import CollectorRegistry, Gauge, make_asgi_app

    registry = CollectorRegistry()
    Gauge("wattwise_test_load_watts", "test gauge", registry=registry).set(42.0)
    tokens = TokenStore()
    app = create_app(StaticBackend(SITE), Settings(), tokens, metrics_app=make_asgi_app(registry))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        r = await client.get("/metrics/")
    assert r.status_code == 200 and "wattwise_test_load_watts 42.0" in r.text


async def test_unknown_paths_and_methods_are_problems() -> None:
    client, token = _client()
    async with client:
        missing = await client.get("/api/v1/nope", headers={"Authorization": f"Bearer {token}"})
        wrong = await client.put("/api/v1/tokens", headers={"Authorization": f"Bearer {token}"})
        asset = await client.get("/static/app.js")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, POST"
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
