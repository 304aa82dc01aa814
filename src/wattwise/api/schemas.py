"""Frozen response and request models of the REST API (they make the OpenAPI schema).

Every model is frozen and forbids unknown keys. Quantities carry their unit in the field
name (SI: W, Wh, s, fractions 0–1). ``t_s`` is seconds on the backend's clock; the API
also gives ``at`` (timezone-aware UTC) where a human reads the time.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from wattwise.config import Mode
from wattwise.model.values import Action, Decision


class ApiModel(BaseModel):
    """Base of every API model: frozen, unknown keys forbidden."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Role(StrEnum):
    """Who may do what: viewers read, operators act, admins also manage tokens."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer, 1 for operator, 2 for admin."""
        return {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}[self]


class Actor(ApiModel):
    """The authenticated caller of a mutation, as journaled."""

    name: str
    role: Role


class Problem(ApiModel):
    """An RFC 9457 problem document (``application/problem+json``); never a stack trace."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    instance: str = ""


# ---- topology ------------------------------------------------------------------------------
NodeKind = Literal["feed", "ats", "ups", "pdu"]


class TopologyNode(ApiModel):
    """One upstream power device: feed, ATS, UPS or PDU."""

    id: str
    kind: NodeKind
    parent: str | None = Field(description="Active upstream node (an ATS's current source); null for feeds")
    sources: tuple[str, ...] = Field(default=(), description="Both sources of an ATS")
    side: str | None = Field(default=None, description="Feed side A/B/C this node is fed from (preferred path)")
    capacity_w: float
    phases: int | None = None


class RackView(ApiModel):
    """A rack and the PDUs that feed it."""

    id: str
    hall: str
    pdus: tuple[str, ...]
    servers: int
    racklet: str | None = None


class SiteView(ApiModel):
    """The site topology: power nodes from feeds to PDUs, and the racks they feed."""

    id: str
    name: str
    nodes: tuple[TopologyNode, ...]
    racks: tuple[RackView, ...]
    servers: int
    services: int
    workloads: int


# ---- headroom ------------------------------------------------------------------------------
class NodeLoad(ApiModel):
    """Load, capacity and headroom of one power node, the chain summed from outlet up."""

    id: str
    kind: NodeKind
    side: str | None
    load_w: float
    capacity_w: float
    headroom_w: float
    load_frac: float


class PhaseLoad(ApiModel):
    """Load of one PDU phase against its derated breaker capacity."""

    pdu_id: str
    phase: int
    load_w: float
    capacity_w: float
    headroom_w: float
    load_frac: float


class SideLoad(ApiModel):
    """Load of one feed side (A/B) summed over its feeds."""

    side: str
    load_w: float
    capacity_w: float
    load_frac: float


class Headroom(ApiModel):
    """Headroom of every feed, ATS, UPS, the busiest PDUs and their phases."""

    t_s: float
    at: datetime
    source: str = Field(description="Where the loads come from: 'telemetry', 'twin' or 'nominal model'")
    nodes: tuple[NodeLoad, ...]
    phases: tuple[PhaseLoad, ...]
    sides: tuple[SideLoad, ...]
    imbalance_frac: float = Field(description="(max side load − min side load) / total load; 0 = balanced")
    pdus_total: int
    pdus_shown: int


class UpsState(ApiModel):
    """A UPS: load, battery and predicted runtime (null fields: no telemetry yet)."""

    id: str
    load_w: float
    capacity_w: float
    on_battery: bool | None
    battery_charge_frac: float | None
    battery_wh: float
    state_of_health_frac: float
    runtime_s: float | None = Field(description="Predicted runtime at the present load")
    runtime_basis: str = Field(description="How runtime_s was obtained")


# ---- devices and readings ------------------------------------------------------------------
class ReadingView(ApiModel):
    """The latest value of one metric of one device."""

    metric: str
    value: float
    t_s: float
    quality: Literal["good", "uncertain", "bad"]


class DeviceView(ApiModel):
    """A device with its latest readings."""

    id: str
    kind: str
    parent: str | None
    maintenance: bool
    readings: tuple[ReadingView, ...]


class DevicePage(ApiModel):
    """One page of devices."""

    total: int
    offset: int
    items: tuple[DeviceView, ...]


class HistoryPoint(ApiModel):
    """One down-sampled bucket: mean, min and max of the raw points in it."""

    t_s: float
    mean: float
    min: float
    max: float
    n: int


class History(ApiModel):
    """Reading history of one metric of one device, down-sampled to at most ``max_points``."""

    device_id: str
    metric: str
    start_s: float
    end_s: float
    step_s: float
    points: tuple[HistoryPoint, ...]
    raw_points: int


# ---- predictions ---------------------------------------------------------------------------
class ForecastPoint(ApiModel):
    """A forecast value with its prediction interval."""

    t_s: float
    mean: float
    lower: float
    upper: float


class ForecastView(ApiModel):
    """Forecast of one series (a feed, UPS or PDU power) with intervals."""

    device_id: str
    metric: str
    model: str
    interval_frac: float = Field(description="Nominal coverage of the interval, e.g. 0.9")
    issued_t_s: float
    capacity: float | None = None
    points: tuple[ForecastPoint, ...]


class Forecasts(ApiModel):
    """Every current forecast; ``note`` explains an empty list."""

    items: tuple[ForecastView, ...]
    note: str = ""


class AtRisk(ApiModel):
    """A device predicted to fail, overload or become unstable."""

    device_id: str
    kind: str
    risk: Literal["failure", "overload", "instability"]
    probability_frac: float
    horizon_s: float
    reason: str
    model: str = ""


class Predictions(ApiModel):
    """At-risk devices, most likely first; ``note`` explains an empty list."""

    items: tuple[AtRisk, ...]
    note: str = ""


# ---- plan, actions, journal ----------------------------------------------------------------
class ActionState(StrEnum):
    """Life of an action that waits for an operator."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXECUTED = "executed"
    FAILED = "failed"


class PlannedAction(ApiModel):
    """An action of the current plan, with its command id and approval state."""

    command_id: str
    state: ActionState
    action: Action
    decided_by: str = ""
    note: str = ""


class DecisionView(ApiModel):
    """A policy's decision with its reasons."""

    decision_id: str
    decision: Decision


class Plan(ApiModel):
    """The current plan: the latest decisions and the actions waiting or done."""

    t_s: float | None
    decisions: tuple[DecisionView, ...]
    actions: tuple[PlannedAction, ...]
    note: str = ""


class JournalEntry(ApiModel):
    """One journal line: what happened, to what, by whom."""

    seq: int
    t_s: float
    at: datetime
    actor: str
    role: str
    kind: str
    target: str
    detail: str
    command_id: str | None = None


class JournalPage(ApiModel):
    """Journal entries, newest first."""

    items: tuple[JournalEntry, ...]
    total: int


class RejectedCount(ApiModel):
    """Readings rejected at ingest for one reason."""

    reason: str
    count: int


class ControllerStatus(ApiModel):
    """Controller state: mode, leadership, staleness, rejected readings."""

    site_id: str
    running: bool
    mode: Mode
    leader: str | None
    is_leader: bool
    fencing_token: int | None
    t_s: float
    at: datetime
    last_cycle_t_s: float | None
    staleness_s: float | None = Field(description="Age of the oldest latest reading; null without telemetry")
    stale_devices: int
    rejected_readings: tuple[RejectedCount, ...]
    pending_actions: int
    maintenance: tuple[str, ...]
    message: str = ""


# ---- operator requests ---------------------------------------------------------------------
Note = Annotated[str, Field(max_length=500)]


class ModeRequest(ApiModel):
    """Change the controller mode (arm = ``armed``, disarm = ``observe`` or ``dry-run``)."""

    mode: Mode
    note: Note = ""


class ApprovalRequest(ApiModel):
    """Approve or deny a pending action."""

    note: Note = ""


class MaintenanceRequest(ApiModel):
    """Put a device in (or take it out of) maintenance."""

    on: bool = True
    note: Note = ""


class MaintenanceView(ApiModel):
    """Maintenance state of a device."""

    device_id: str
    maintenance: bool


class WhatIfRequest(ApiModel):
    """A hypothetical event to plan for, e.g. losing feed A now."""

    lose: Annotated[tuple[Annotated[str, Field(max_length=128)], ...], Field(min_length=1, max_length=16)] = Field(
        description="Device ids (feeds, ATS, UPS, PDUs) assumed lost"
    )
    note: Note = ""


class WhatIfResult(ApiModel):
    """What would happen: loads after the loss, overloads, servers unpowered, the plan."""

    lose: tuple[str, ...]
    t_s: float
    nodes: tuple[NodeLoad, ...]
    overloaded: tuple[str, ...]
    servers_unpowered: int
    decision: Decision | None
    summary: str


class TokenRequest(ApiModel):
    """Create an API token (admin only)."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
    role: Role
    ttl_s: Annotated[float, Field(gt=0, le=400 * 86_400)] | None = None


class TokenInfo(ApiModel):
    """An issued token; ``token`` is shown once, only in the creation response."""

    name: str
    role: Role
    expires_t_s: float | None
    token: str | None = None


class Event(ApiModel):
    """A live update pushed over SSE; clients re-read the named resource."""

    kind: Literal["headroom", "status", "plan", "journal", "forecast", "predictions"]
    t_s: float
    summary: str = ""
