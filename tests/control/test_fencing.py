"""FencingGate and FencedDriver: stale tokens are refused, newer ones win, state survives restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wattwise.control.fencing import FencedDriver, FencingGate
from wattwise.drivers.base import Driver
from wattwise.model.values import Action, ActionKind, ActionResult, Reading


class RecordingDriver:
    """An in-test device that records what reached it, optionally slowly."""

    name = "rec"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.applied: list[tuple[str, int | None]] = []
        self.delay_s = delay_s

    def supports(self, kind: ActionKind) -> bool:
        return kind is ActionKind.OUTLET_OFF

    async def read(self) -> list[Reading]:
        return [Reading("pdu-1", "power_w", 10.0, 0.0)]

    async def apply(self, action: Action) -> ActionResult:
        await asyncio.sleep(self.delay_s)
        self.applied.append((action.target_id, action.fencing_token))
        return ActionResult(command_id=action.command_id, ok=True)

    async def close(self) -> None:
        self.applied.append(("closed", None))


def off(target: str, token: int | None) -> Action:
    return Action(kind=ActionKind.OUTLET_OFF, target_id=target, fencing_token=token)


def test_gate_refuses_lower_tokens_per_domain() -> None:
    gate = FencingGate()
    assert gate.admit("a", 5) is None
    assert gate.admit("a", 5) is None  # the same leader keeps acting
    assert gate.admit("a", 4) == "fenced: token 4 < 5"
    assert gate.admit("b", 1) is None  # domains are independent
    assert gate.admit("a", 9) is None
    assert gate.admit("a", 5) == "fenced: token 5 < 9"
    assert gate.highest("a") == 9 and gate.highest("b") == 1 and gate.highest("c") is None
    assert gate.refused == 2


def test_gate_requires_a_token_unless_told_otherwise() -> None:
    assert FencingGate().admit("a", None) == "fenced: no token"
    assert FencingGate(require_token=False).admit("a", None) is None


def test_gate_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "fence.json"
    FencingGate(state_path=state).admit("hall", 42)
    again = FencingGate(state_path=state)
    assert again.highest("hall") == 42
    assert again.admit("hall", 41) == "fenced: token 41 < 42"


async def test_fenced_driver_refuses_stale_and_passes_reads() -> None:
    inner = RecordingDriver()
    fenced = FencedDriver(inner, FencingGate(), domain="hall")
    assert isinstance(fenced, Driver)
    assert fenced.supports(ActionKind.OUTLET_OFF) and not fenced.supports(ActionKind.THROTTLE)
    assert (await fenced.apply(off("o1", 7))).ok
    stale = await fenced.apply(off("o2", 6))
    assert not stale.ok and stale.message == "fenced: token 6 < 7"
    assert stale.command_id == off("o2", 6).command_id
    assert inner.applied == [("o1", 7)]
    assert [r.metric for r in await fenced.read()] == ["power_w"]
    await fenced.close()
    assert inner.applied[-1] == ("closed", None)


async def test_a_stale_command_cannot_overtake_a_newer_one_in_flight() -> None:
    """Old leader's send is checked while the new leader's is still at the device: refused."""
    inner = RecordingDriver(delay_s=0.05)
    fenced = FencedDriver(inner, FencingGate(), domain=lambda a: a.target_id.split("/")[0])
    new, old, other = await asyncio.gather(
        fenced.apply(off("hall/o1", 8)), fenced.apply(off("hall/o2", 7)), fenced.apply(off("yard/o3", 1))
    )
    assert new.ok and other.ok and not old.ok
    assert ("hall/o2", 7) not in inner.applied
