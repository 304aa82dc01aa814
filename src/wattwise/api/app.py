"""The API app factory: REST routes, SSE, auth, guards, problem+json, the dashboard.

``create_app(backend, settings, tokens)`` is the only entry point; ``wattwise serve`` and the
controller both call it. The Prometheus exporter mounts through ``metrics_app``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp

from wattwise import __version__
from wattwise.api import problems
from wattwise.api.actions import action_router, token_router
from wattwise.api.auth import TokenStore
from wattwise.api.base import ApiBackend
from wattwise.api.events import event_router
from wattwise.api.limits import ApiLimits, GuardMiddleware
from wattwise.api.routes import read_router
from wattwise.api.schemas import Problem, Role
from wattwise.api.security import Authenticator, reject_unknown_query
from wattwise.config import Settings

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def create_app(
    backend: ApiBackend,
    settings: Settings,
    tokens: TokenStore,
    *,
    limits: ApiLimits | None = None,
    metrics_app: ASGIApp | None = None,
    keepalive_s: float = 15.0,
) -> FastAPI:
    """Build the FastAPI app.

    Args:
        backend: Where every answer comes from (``StaticBackend`` or the controller's adapter).
        settings: Run-time settings (``admin_token`` seeds ``tokens`` when set).
        tokens: The token store; an ``admin`` token is added from ``settings.admin_token``.
        limits: Body size, rate limit and CORS origins (default: closed CORS, 64 KiB, 20 req/s).
        metrics_app: A Prometheus ASGI app to mount at ``/metrics`` (unauthenticated, as scrapers expect).
        keepalive_s: Seconds between SSE keep-alive comments.

    Returns:
        The app; its lifespan starts and stops the backend.
    """
    limits = limits or ApiLimits()
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        tokens.add(settings.admin_token.get_secret_value(), "admin", Role.ADMIN)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.stop()

    app = FastAPI(
        title="wattwise",
        version=__version__,
        summary="Power chain and workloads, healthy together: state, predictions, plans, journal, operator actions.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
    )
    problems.install(app)
    auth = Authenticator(tokens)
    app.include_router(read_router(backend, auth))
    app.include_router(event_router(backend, auth, keepalive_s))
    app.include_router(action_router(backend, auth))
    app.include_router(token_router(backend, auth, tokens))
    _add_plain_routes(app)
    if metrics_app is not None:
        app.mount("/metrics", metrics_app)
    if limits.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(limits.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(GuardMiddleware, limits=limits)
    _add_problem_schema(app)
    return app


def _add_plain_routes(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"ok": True})

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def _add_problem_schema(app: FastAPI) -> None:
    """Put the Problem schema into components (problem_doc refers to it by $ref)."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {})
        assert isinstance(components, dict)
        components.setdefault("schemas", {})["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
