"""Frozen values' compensating actions and ids; wall and simulated clocks."""

from __future__ import annotations

import asyncio
import time

import pytest

from wattwise.model.clock import SimClock, WallClock
from wattwise.model.values import Action, ActionKind


@pytest.mark.parametrize(
    ("kind", "inverse"),
    [
        (ActionKind.OUTLET_OFF, ActionKind.OUTLET_ON),
        (ActionKind.SERVICE_SHED, ActionKind.SERVICE_RESTORE),
        (ActionKind.WORKLOAD_STOP, ActionKind.WORKLOAD_START),
        (ActionKind.NODE_DRAIN, ActionKind.NODE_RESUME),
    ],
)
def test_switching_actions_compensate_with_their_inverse(kind: ActionKind, inverse: ActionKind) -> None:
    action = Action(kind=kind, target_id="x", decision_id="d1")
    back = action.compensating()
    assert back is not None
    assert (back.kind, back.target_id) == (inverse, "x")
    assert back.reason == f"compensate {action.command_id}"


@pytest.mark.parametrize("kind", [ActionKind.WORKLOAD_MIGRATE, ActionKind.PARTITION_MOVE])
def test_moves_compensate_by_moving_back(kind: ActionKind) -> None:
    move = Action(kind=kind, target_id="wl-1", source_id="s1", dest_id="s2")
    back = move.compensating()
    assert back is not None
    assert (back.kind, back.source_id, back.dest_id) == (kind, "s2", "s1")
    assert Action(kind=kind, target_id="wl-1", dest_id="s2").compensating() is None  # origin unknown


def test_setpoints_compensate_with_the_previous_value() -> None:
    cap = Action(kind=ActionKind.POWER_CAP, target_id="s1", value=300.0, previous_value=450.0)
    back = cap.compensating()
    assert back is not None
    assert (back.value, back.previous_value) == (450.0, 300.0)
    assert Action(kind=ActionKind.POWER_CAP, target_id="s1", value=300.0).compensating() is None


def test_command_id_is_deterministic() -> None:
    a = Action(kind=ActionKind.THROTTLE, target_id="svc", value=0.5, decision_id="d")
    assert a.command_id == Action(kind=ActionKind.THROTTLE, target_id="svc", value=0.5, decision_id="d").command_id
    assert a.command_id != Action(kind=ActionKind.THROTTLE, target_id="svc", value=0.6, decision_id="d").command_id
    assert len(a.command_id) == 16


def test_sim_clock_moves_only_when_told() -> None:
    clock = SimClock(start_s=100.0)
    assert clock.now_s() == 100.0
    clock.advance_s(2.5)
    asyncio.run(clock.sleep_s(10.0))
    asyncio.run(clock.sleep_s(-3.0))  # a negative sleep is no sleep
    assert clock.now_s() == 112.5
    with pytest.raises(ValueError, match="backwards"):
        clock.advance_s(-1.0)


def test_wall_clock_follows_real_time() -> None:
    clock = WallClock()
    before = time.time()
    asyncio.run(clock.sleep_s(0.01))
    assert before + 0.005 <= clock.now_s() <= time.time()
