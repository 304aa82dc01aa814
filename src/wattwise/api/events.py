"""Live updates over Server-Sent Events.

Each event names the resource that changed (``headroom``, ``status``, ``plan``, ``journal``,
``forecast``, ``predictions``) and clients re-read it. A comment line every
``keepalive_s`` keeps proxies from closing an idle stream. The dashboard reads the stream
with ``fetch`` so the token travels in the Authorization header, never in a URL.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from wattwise.api.base import ApiBackend
from wattwise.api.problems import problem_doc
from wattwise.api.schemas import Actor, Event, Role
from wattwise.api.security import Authenticator

_SSE_DOC: dict[int | str, dict[str, object]] = {
    200: {
        "description": "An endless text/event-stream; each `data:` line is an Event as JSON",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def sse_frame(event: Event, seq: int) -> str:
    """One SSE frame."""
    return f"id: {seq}\nevent: {event.kind}\ndata: {event.model_dump_json()}\n\n"


async def _pump(source: AsyncIterator[Event], sink: asyncio.Queue[Event | None]) -> None:
    try:
        async for event in source:
            await sink.put(event)
    finally:
        await sink.put(None)


async def stream(backend: ApiBackend, request: Request, keepalive_s: float) -> AsyncIterator[str]:
    """SSE text for one client until it disconnects or the backend stops."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue(64)
    pump = asyncio.create_task(_pump(backend.events(), queue))
    seq = 0
    try:
        yield "retry: 2000\n: connected\n\n"
        while not await request.is_disconnected():
            try:
                event = await asyncio.wait_for(queue.get(), keepalive_s)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if event is None:
                return
            seq += 1
            yield sse_frame(event, seq)
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump


def event_router(backend: ApiBackend, auth: Authenticator, keepalive_s: float = 15.0) -> APIRouter:
    """``GET /api/v1/events``: the live stream (viewer or higher)."""
    router = APIRouter(prefix="/api/v1", tags=["live"])

    @router.get(
        "/events",
        summary="Live updates (Server-Sent Events)",
        response_class=StreamingResponse,
        responses={**_SSE_DOC, **problem_doc(401, 403, 429)},
    )
    async def events(
        request: Request, actor: Annotated[Actor, Depends(auth.require(Role.VIEWER))]
    ) -> StreamingResponse:
        return StreamingResponse(
            stream(backend, request, keepalive_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router
