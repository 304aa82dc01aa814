"""Request guards: body size limit, per-client rate limit, security headers (pure ASGI).

Rate limiting is a token bucket per client address. Limits are deliberately per process:
a multi-controller deployment puts its own proxy in front.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wattwise.api.problems import problem_response

logger = logging.getLogger(__name__)

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    ),
]


@dataclass(frozen=True)
class ApiLimits:
    """Guards of the HTTP edge.

    Attributes:
        max_body_bytes: Largest accepted request body.
        rate_per_s: Sustained requests per second per client address.
        burst: Bucket size (requests allowed at once).
        cors_origins: Origins allowed cross-site; empty = CORS closed (the default).
    """

    max_body_bytes: int = 64 * 1024
    rate_per_s: float = 20.0
    burst: int = 60
    cors_origins: tuple[str, ...] = field(default=())


class _Bucket:
    __slots__ = ("level", "t_s")

    def __init__(self, level: float, t_s: float) -> None:
        self.level = level
        self.t_s = t_s


class GuardMiddleware:
    """Enforces :class:`ApiLimits` and adds security headers to every HTTP response."""

    def __init__(self, app: ASGIApp, limits: ApiLimits) -> None:
        self.app = app
        self.limits = limits
        self._buckets: dict[str, _Bucket] = {}

    def _allow(self, client: str) -> bool:
        now_s = time.monotonic()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) > 10_000:  # forget idle clients rather than grow forever
                self._buckets.clear()
            bucket = self._buckets[client] = _Bucket(float(self.limits.burst), now_s)
        bucket.level = min(float(self.limits.burst), bucket.level + (now_s - bucket.t_s) * self.limits.rate_per_s)
        bucket.t_s = now_s
        if bucket.level < 1.0:
            return False
        bucket.level -= 1.0
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the rate and the body size, then call the app with security headers added."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0_s = time.perf_counter()
        client = scope.get("client")
        addr = client[0] if client else "unknown"
        if not self._allow(addr):
            retry_s = max(1, int(1.0 / max(self.limits.rate_per_s, 1e-3)))
            await problem_response(429, "rate limit exceeded", scope["path"], {"Retry-After": str(retry_s)})(
                scope, receive, send
            )
            return
        body, too_big = await self._read_body(scope, receive)
        if too_big:
            await problem_response(413, f"at most {self.limits.max_body_bytes} bytes", scope["path"])(
                scope, receive, send
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Server-Timing: time in the server until the response starts (W3C Server Timing).
                timing = f"app;dur={(time.perf_counter() - t0_s) * 1e3:.2f}".encode()
                extra = [*_SECURITY_HEADERS, (b"server-timing", timing)]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, replay, send_with_headers)

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, bool]:
        limit = self.limits.max_body_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                return b"", True
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False
