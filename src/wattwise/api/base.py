"""The one seam between the API and the rest of wattwise: the ``ApiBackend`` protocol.

The API never imports the controller, the store or the models directly; it asks a backend.
``StaticBackend`` answers from the site model alone (nominal loads, clear empty states);
the controller's adapter answers from live telemetry, forecasts, plans and the journal.

Every method is async so an adapter may query a store or wait on the control loop; reads
must be cheap (the dashboard polls them, the status and headroom reads have a 50 ms p99
goal at 10 000 servers), so adapters should serve them from state the loop already holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from wattwise.api.schemas import (
    Actor,
    ControllerStatus,
    DevicePage,
    Event,
    Forecasts,
    Headroom,
    History,
    JournalPage,
    MaintenanceView,
    Plan,
    PlannedAction,
    Predictions,
    SiteView,
    UpsState,
    WhatIfResult,
)
from wattwise.config import Mode


@runtime_checkable
class ApiBackend(Protocol):
    """Everything the routes and the dashboard need.

    Lookups of unknown ids raise ``KeyError`` (mapped to 404). Refused operator actions raise
    :class:`wattwise.errors.ActuationRefused` (mapped to 409). Every mutation receives the
    ``Actor`` and must journal who did it.
    """

    async def start(self) -> None:
        """Called once by the app's lifespan on the serving event loop."""
        ...

    async def stop(self) -> None:
        """Called once at shutdown; must end every ``events()`` subscription."""
        ...

    async def site(self) -> SiteView:
        """Topology: power nodes from feeds to PDUs and the racks they feed."""
        ...

    async def headroom(self, max_pdus: int) -> Headroom:
        """Per feed/side/ATS/UPS/PDU/phase load and headroom; the ``max_pdus`` busiest PDUs."""
        ...

    async def ups(self) -> tuple[UpsState, ...]:
        """Every UPS with battery and predicted runtime."""
        ...

    async def devices(self, kind: str | None, offset: int, limit: int) -> DevicePage:
        """Devices (optionally of one kind) with their latest readings."""
        ...

    async def history(
        self, device_id: str, metric: str, start_s: float | None, end_s: float | None, max_points: int
    ) -> History:
        """Reading history of one metric, down-sampled to at most ``max_points`` buckets."""
        ...

    async def forecasts(self) -> Forecasts:
        """Current forecasts with intervals (empty with a note when none are available)."""
        ...

    async def predictions(self) -> Predictions:
        """Devices at risk of failure, overload or instability."""
        ...

    async def plan(self) -> Plan:
        """The latest decisions and the actions pending, approved, denied or executed."""
        ...

    async def journal(self, limit: int, before_seq: int | None) -> JournalPage:
        """Journal entries, newest first; page with ``before_seq``."""
        ...

    async def status(self) -> ControllerStatus:
        """Controller mode, leadership, staleness and rejected readings."""
        ...

    async def set_mode(self, mode: Mode, actor: Actor, note: str) -> ControllerStatus:
        """Arm or disarm the controller."""
        ...

    async def decide_action(self, command_id: str, approve: bool, actor: Actor, note: str) -> PlannedAction:
        """Approve or deny a pending action."""
        ...

    async def set_maintenance(self, device_id: str, on: bool, actor: Actor, note: str) -> MaintenanceView:
        """Mark a device as in (or out of) maintenance."""
        ...

    async def what_if(self, lose_ids: tuple[str, ...], actor: Actor) -> WhatIfResult:
        """Plan for a hypothetical loss of the named devices, now; changes nothing."""
        ...

    async def journal_api_event(self, actor: Actor, kind: str, target: str, detail: str) -> None:
        """Journal a mutation the API performs itself (token management)."""
        ...

    def events(self) -> AsyncIterator[Event]:
        """A fresh subscription to live updates; ends when the backend shuts down."""
        ...
