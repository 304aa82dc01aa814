"""API fixtures: a real uvicorn server in a thread on a free port, tokens of every role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import EXAMPLES, free_port

from wattwise.api.app import create_app
from wattwise.api.auth import TokenStore
from wattwise.api.limits import ApiLimits
from wattwise.api.schemas import Role
from wattwise.api.server import ServerThread
from wattwise.api.static_backend import StaticBackend
from wattwise.config import Settings
from wattwise.model.clock import SimClock, WallClock
from wattwise.model.loader import load_site

DEMO_SITE = EXAMPLES / "single-rack.yaml"


class TokenClock(SimClock):
    """Wall time plus an offset a test can advance (to expire tokens)."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self._wall = WallClock()

    def now_s(self) -> float:
        return self._wall.now_s() + super().now_s()


@dataclass
class Live:
    """A running API server and its tokens."""

    url: str
    backend: StaticBackend
    tokens: TokenStore
    token: dict[str, str]
    server: ServerThread


def start_live(site_path: Path = DEMO_SITE, *, rate_per_s: float = 10_000.0, tick_s: float = 0.25) -> Live:
    site = load_site(site_path)
    backend = StaticBackend(site, animate=True, tick_s=tick_s, period_s=20.0, seed=1)
    clock = TokenClock()
    tokens = TokenStore(clock=clock)
    issued = {role.value: tokens.issue(f"{role.value}-user", role)[0] for role in Role}
    expiring, _ = tokens.issue("expired-user", Role.ADMIN, ttl_s=30.0)
    clock.advance_s(60.0)  # only "expired-user" had a time limit
    issued["expired"] = expiring
    app = create_app(
        backend, Settings(), tokens, limits=ApiLimits(rate_per_s=rate_per_s, burst=int(rate_per_s)), keepalive_s=1.0
    )
    server = ServerThread(app, port=free_port()).start()
    return Live(server.url, backend, tokens, issued, server)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    """One server per test module (state changes stay within the module)."""
    lv = start_live()
    try:
        yield lv
    finally:
        lv.server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
