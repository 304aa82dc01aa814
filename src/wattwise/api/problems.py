"""Errors as ``application/problem+json`` (RFC 9457), never with a stack trace.

This is the one place where the API translates exceptions to HTTP: ``HTTPException`` keeps
its status, validation errors become 422 with the failing fields (never the input values),
wattwise errors map by branch, and anything else is logged with ``logger.exception`` and
answered with a bare 500.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wattwise.api.schemas import Problem
from wattwise.errors import ActuationRefused, ConfigError, LeadershipLost, StoreError, WattwiseError

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem_response(
    status: int, detail: str = "", instance: str = "", headers: dict[str, str] | None = None
) -> JSONResponse:
    """A problem+json response."""
    body = Problem(title=_TITLES.get(status, "Error"), status=status, detail=detail, instance=instance)
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json answers."""
    return {
        s: {
            "description": _TITLES.get(s, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for s in statuses
    }


def _status_of(err: WattwiseError) -> int:
    if isinstance(err, ActuationRefused):
        return 409
    if isinstance(err, ConfigError):
        return 400
    if isinstance(err, StoreError | LeadershipLost):
        return 503
    return 500


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette lists only the first matching route's methods; list every documented one.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(exc.status_code, str(exc.detail or ""), request.url.path, headers)


def _allowed_methods(request: Request) -> list[str]:
    app = request.app
    table: list[tuple[re.Pattern[str], list[str]]] | None = getattr(app.state, "allowed_methods", None)
    if table is None:
        table = []
        for template, ops in app.openapi().get("paths", {}).items():
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            # device ids may contain "/": those parameters match greedily
            pattern = pattern.replace("devices/[^/]+", "devices/.+")
            table.append((re.compile(f"^{pattern}$"), sorted(m.upper() for m in ops)))
        app.state.allowed_methods = table
    path = request.url.path
    return sorted({m for rx, methods in table if rx.match(path) for m in methods})


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()[:10]
    )
    return problem_response(422, fields, request.url.path)


async def _wattwise_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, WattwiseError)
    status = _status_of(exc)
    if status == 500:
        logger.error("unhandled wattwise error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(500, "", request.url.path)
    return problem_response(status, str(exc), request.url.path)


async def _any_error(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the server log (never to the client); headers are not logged.
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "", request.url.path)


def install(app: FastAPI) -> None:
    """Register the problem+json handlers on an app."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(WattwiseError, _wattwise_error)
    app.add_exception_handler(Exception, _any_error)
