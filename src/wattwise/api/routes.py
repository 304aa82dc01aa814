"""Read routes: topology, headroom, UPS, devices, history, forecasts, predictions, plan, journal, status."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from wattwise.api.base import ApiBackend
from wattwise.api.problems import problem_doc
from wattwise.api.schemas import (
    Actor,
    ControllerStatus,
    DevicePage,
    Forecasts,
    Headroom,
    History,
    JournalPage,
    Plan,
    Predictions,
    Role,
    SiteView,
    UpsState,
)
from wattwise.api.security import Authenticator

MAX_PAGE = 1000


def read_router(backend: ApiBackend, auth: Authenticator) -> APIRouter:
    """Every GET route under ``/api/v1``; any valid token (viewer or higher) may read."""
    viewer = Annotated[Actor, Depends(auth.require(Role.VIEWER))]
    router = APIRouter(prefix="/api/v1", tags=["read"], responses=problem_doc(401, 403, 422, 429))

    @router.get("/me", summary="Who the token belongs to")
    async def me(actor: viewer) -> Actor:
        return actor

    @router.get("/status", summary="Controller status: mode, leader, staleness, rejected readings")
    async def status(actor: viewer) -> ControllerStatus:
        return await backend.status()

    @router.get("/site", summary="Topology from feeds to racks")
    async def site(actor: viewer) -> SiteView:
        return await backend.site()

    last: list[tuple[Headroom, bytes]] = []

    @router.get(
        "/headroom",
        summary="Load and headroom per feed side, feed, ATS, UPS, PDU and phase",
        response_model=Headroom,
    )
    async def headroom(
        actor: viewer,
        max_pdus: Annotated[int, Query(ge=0, le=100_000, description="Busiest PDUs to include")] = 100,
    ) -> Response:
        # The largest read at 10k servers: a backend that returns the same frozen view until
        # the loads change gets its JSON encoded once, not once per dashboard.
        view = await backend.headroom(max_pdus)
        body = next((b for v, b in last if v is view), None)
        if body is None:
            body = view.model_dump_json().encode()
            last[:] = [*last[-3:], (view, body)]
        return Response(body, media_type="application/json")

    @router.get("/ups", summary="UPS state, battery and predicted runtime")
    async def ups(actor: viewer) -> tuple[UpsState, ...]:
        return await backend.ups()

    @router.get("/devices", summary="Devices with their latest readings")
    async def devices(
        actor: viewer,
        kind: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]+$")] = None,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> DevicePage:
        return await backend.devices(kind, offset, limit)

    @router.get(
        "/devices/{device_id:path}/history",
        summary="Reading history, down-sampled (an empty range gives no points)",
        responses=problem_doc(404),
    )
    async def history(
        actor: viewer,
        device_id: str,
        metric: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")] = "power_w",
        start_s: Annotated[float | None, Query(ge=0, le=1e11)] = None,
        end_s: Annotated[float | None, Query(ge=0, le=1e11)] = None,
        max_points: Annotated[int, Query(ge=1, le=10_000)] = 500,
    ) -> History:
        try:
            return await backend.history(device_id, metric, start_s, end_s, max_points)
        except KeyError as err:
            raise HTTPException(404, f"unknown device {device_id!r}") from err

    _add_prediction_routes(router, backend, viewer)
    return router


def _add_prediction_routes(router: APIRouter, backend: ApiBackend, viewer: Any) -> None:
    @router.get("/forecasts", summary="Forecasts with prediction intervals")
    async def forecasts(actor: viewer) -> Forecasts:
        return await backend.forecasts()

    @router.get("/predictions", summary="Devices at risk of failure, overload or instability")
    async def predictions(actor: viewer) -> Predictions:
        return await backend.predictions()

    @router.get("/plan", summary="Current plan: decisions with reasons and their actions")
    async def plan(actor: viewer) -> Plan:
        return await backend.plan()

    @router.get("/journal", summary="Action journal, newest first")
    async def journal(
        actor: viewer,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        before_seq: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    ) -> JournalPage:
        return await backend.journal(limit, before_seq)
