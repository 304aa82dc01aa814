"""A tiny asyncio HTTP/1.1 JSON server for emulators (keep-alive, Content-Length bodies).

Light enough to serve hundreds of emulated BMCs and PDUs from one process; not a general
web server (no chunked requests, no pipelining beyond sequential keep-alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    501: "Not Implemented",
}


@dataclass(frozen=True)
class HttpRequest:
    """One parsed request.

    Attributes:
        method: Upper-case method.
        path: Target path, without the query.
        headers: Header names in lower case.
        body: Request body.
        query: Raw query string after ``?`` (still percent-encoded), empty when none.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: str = ""


@dataclass
class HttpResponse:
    """One response: status, extra headers, and a JSON body (``None`` for no body)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class JsonHttpServer:
    """Serves ``handler`` on 127.0.0.1:``port`` (0 = any free port).

    Args:
        handler: Coroutine mapping a request to a response.
        port: TCP port, 0 for any.
        ssl_context: Serve HTTPS with this context.
    """

    def __init__(self, handler: Handler, port: int = 0, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.port = port
        self.ssl_context = ssl_context
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen; ``port`` holds the bound port afterwards."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.ssl_context)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close the listener and every open connection."""
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while (request := await _read_request(reader)) is not None:
                try:
                    response = await self.handler(request)
                except Exception:  # an emulator bug must answer 500, not kill the connection
                    logger.exception("emulator handler failed on %s %s", request.method, request.path)
                    response = HttpResponse(500, {"error": {"message": "internal error"}})
                writer.write(_encode(response))
                await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError) as err:
            logger.debug("emulator connection ended: %s", err)
        finally:
            self._writers.discard(writer)
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    path, _, query = target.partition("?")
    return HttpRequest(method.upper(), path, headers, body, query)


def _encode(response: HttpResponse) -> bytes:
    body = b"" if response.body is None else json.dumps(response.body).encode()
    head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}"]
    if response.body is not None:
        head.append("Content-Type: application/json")
    head.append(f"Content-Length: {len(body)}")
    head += [f"{k}: {v}" for k, v in response.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
