"""schemathesis against the published OpenAPI document: no 500s, every response matches it.

The schema is built from the same app factory the live server runs; cases are sent over
HTTP to a real uvicorn server. Bounded: a few examples per operation (< 60 s in all).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from tests.api.conftest import DEMO_SITE, Live, bearer, start_live

from wattwise.api.app import create_app
from wattwise.api.auth import TokenStore
from wattwise.api.static_backend import StaticBackend
from wattwise.config import Settings
from wattwise.model.loader import load_site

_spec = create_app(StaticBackend(load_site(DEMO_SITE)), Settings(), TokenStore()).openapi()
schema = schemathesis.openapi.from_dict(_spec).exclude(path="/api/v1/events")


@pytest.fixture(scope="module")
def fuzz_live() -> Iterator[Live]:
    lv = start_live()
    try:
        yield lv
    finally:
        lv.server.stop()


def test_spec_is_published(fuzz_live: Live) -> None:
    served = httpx.get(f"{fuzz_live.url}/openapi.json", timeout=10.0).json()
    assert served["paths"].keys() == _spec["paths"].keys()
    assert "/api/v1/events" in served["paths"] and "bearer" in str(served["components"]["securitySchemes"]).lower()


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("WATTWISE_FUZZ_EXAMPLES", "6")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms(case: schemathesis.Case, fuzz_live: Live) -> None:
    case.call_and_validate(base_url=fuzz_live.url, headers=bearer(fuzz_live.token["admin"]))
