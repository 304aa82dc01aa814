"""Frozen values that cross layers: readings, actions, action results and decisions.

``Reading`` is a slotted frozen dataclass rather than a pydantic model because ingest
handles hundreds of thousands of them per second; validation of readings lives in
``wattwise.telemetry``. ``Action`` and ``Decision`` are frozen pydantic models.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Quality(StrEnum):
    """How much a reading can be trusted (OPC-UA style)."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement of one metric of one device.

    Attributes:
        device_id: Site-model id of the device (or workload/processor) measured.
        metric: Registered metric name; its SI unit is part of the name (``power_w``).
        value: The value in the metric's SI unit.
        t_s: Time of measurement, seconds since the Unix epoch (or the sim clock's origin).
        quality: Trust in the value.
        tags: Sorted ``(key, value)`` pairs: application, os, load_level, site, rack...
    """

    device_id: str
    metric: str
    value: float
    t_s: float
    quality: Quality = Quality.GOOD
    tags: tuple[tuple[str, str], ...] = field(default=())


class ActionKind(StrEnum):
    """Every kind of action wattwise may take, on devices, workloads or orchestrators."""

    OUTLET_OFF = "outlet_off"
    OUTLET_ON = "outlet_on"
    OUTLET_CYCLE = "outlet_cycle"
    PSU_SETPOINT = "psu_setpoint"
    POWER_CAP = "power_cap"
    THROTTLE = "throttle"
    SERVICE_SHED = "service_shed"
    SERVICE_RESTORE = "service_restore"
    WORKLOAD_MIGRATE = "workload_migrate"
    WORKLOAD_STOP = "workload_stop"
    WORKLOAD_START = "workload_start"
    WORKLOAD_DEFER = "workload_defer"
    PARTITION_MOVE = "partition_move"
    COOLING_SETPOINT = "cooling_setpoint"
    COOLING_ISOLATE = "cooling_isolate"
    ATS_TRANSFER = "ats_transfer"
    NODE_CORDON = "node_cordon"
    NODE_DRAIN = "node_drain"
    NODE_RESUME = "node_resume"


_INVERSE: dict[ActionKind, ActionKind] = {
    ActionKind.OUTLET_OFF: ActionKind.OUTLET_ON,
    ActionKind.OUTLET_ON: ActionKind.OUTLET_OFF,
    ActionKind.SERVICE_SHED: ActionKind.SERVICE_RESTORE,
    ActionKind.SERVICE_RESTORE: ActionKind.SERVICE_SHED,
    ActionKind.WORKLOAD_STOP: ActionKind.WORKLOAD_START,
    ActionKind.WORKLOAD_START: ActionKind.WORKLOAD_STOP,
    ActionKind.NODE_CORDON: ActionKind.NODE_RESUME,
    ActionKind.NODE_DRAIN: ActionKind.NODE_RESUME,
}


class Action(BaseModel):
    """One idempotent command to a device, workload or orchestrator.

    ``value`` carries the kind's quantity in SI: PSU set-point and power cap in W, throttle
    level as a fraction of full power, cooling set-point in °C. ``dest_id`` names the target of
    a migration or partition move, or the source an ATS should transfer to.
    ``previous_value``/``source_id`` record the state before, so the compensating action
    can be derived.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ActionKind
    target_id: str
    value: float | None = None
    dest_id: str | None = None
    previous_value: float | None = None
    source_id: str | None = None
    reason: str = ""
    decision_id: str = ""
    fencing_token: int | None = None
    not_before_s: float = 0.0
    sequence: int = 0
    """Order among the actions due together: the actuator sends a higher sequence only once
    every lower one due with it was acknowledged (dependants shed before their dependencies,
    outlets switched off once their hosts' services are down)."""

    @property
    def command_id(self) -> str:
        """Deterministic id: the same intent always yields the same id (idempotent retries)."""
        key = f"{self.decision_id}|{self.kind}|{self.target_id}|{self.value}|{self.dest_id}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def compensating(self) -> Action | None:
        """The action that undoes this one, or ``None`` when nothing needs undoing."""
        inverse = _INVERSE.get(self.kind)
        if inverse is not None:
            return self.model_copy(update={"kind": inverse, "reason": f"compensate {self.command_id}"})
        if self.kind is ActionKind.WORKLOAD_MIGRATE and self.source_id is not None:
            return self.model_copy(
                update={"dest_id": self.source_id, "source_id": self.dest_id, "reason": f"compensate {self.command_id}"}
            )
        if self.kind is ActionKind.PARTITION_MOVE and self.source_id is not None:
            return self.model_copy(
                update={"dest_id": self.source_id, "source_id": self.dest_id, "reason": f"compensate {self.command_id}"}
            )
        if self.previous_value is not None:
            return self.model_copy(
                update={
                    "value": self.previous_value,
                    "previous_value": self.value,
                    "reason": f"compensate {self.command_id}",
                }
            )
        return None


class ActionResult(BaseModel):
    """What the device (or twin) said about an action."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: str
    ok: bool
    message: str = ""
    t_s: float = 0.0


class DecisionStatus(StrEnum):
    """Outcome of a policy (the Kubernetes scheduler ``Status`` idea)."""

    OK = "ok"
    INFEASIBLE = "infeasible"
    SKIPPED = "skipped"


class Decision(BaseModel):
    """What a policy decided: actions, status, reasons, and the effect it predicts.

    ``predicted_effect`` maps a quantity name with its unit suffix (``ups-a.load_w``,
    ``loss_w``) to the value the policy expects after its actions.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy_name: str
    status: DecisionStatus
    actions: tuple[Action, ...] = ()
    reasons: tuple[str, ...] = ()
    predicted_effect: dict[str, float] = Field(default_factory=dict)
    t_s: float = 0.0
