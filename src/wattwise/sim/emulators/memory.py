"""MemoryDriver: a small stateful in-memory Driver to stand behind emulators without the twin.

It keeps one value per (device, metric) and gives actions their physical effect on that
state (an outlet switched off reads 0 W; a power cap bounds power), so closed loops over the
wire are real. The twin (:mod:`wattwise.sim`) is the full model; this is the light stand-in
used by benchmarks of 1 000 endpoints and by protocol tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from wattwise.model.values import Action, ActionKind, ActionResult, Reading

_SUPPORTED = frozenset(
    {
        ActionKind.OUTLET_OFF,
        ActionKind.OUTLET_ON,
        ActionKind.OUTLET_CYCLE,
        ActionKind.PSU_SETPOINT,
        ActionKind.POWER_CAP,
        ActionKind.COOLING_SETPOINT,
    }
)


class MemoryDriver:
    """State as ``{(device_id, metric): value}``; actions change it.

    Args:
        state: Initial values.
        now_s: Time source for reading timestamps.
    """

    def __init__(self, state: Mapping[tuple[str, str], float], now_s: Callable[[], float] = time.time) -> None:
        self.name = "memory"
        self.state = dict(state)
        self.now_s = now_s
        self.applied: list[Action] = []
        self._power_before_off: dict[str, float] = {}

    def supports(self, kind: ActionKind) -> bool:
        """Outlet switching, PSU set-points, power caps and cooling set-points."""
        return kind in _SUPPORTED

    async def read(self) -> list[Reading]:
        """Every value as a reading stamped now."""
        t_s = self.now_s()
        return [Reading(d, m, v, t_s) for (d, m), v in self.state.items()]

    async def apply(self, action: Action) -> ActionResult:
        """Give the action its effect on the state."""
        self.applied.append(action)
        target, kind = action.target_id, action.kind
        ok, message = True, "applied"
        if kind is ActionKind.OUTLET_OFF:
            if self.state.get((target, "outlet_on"), 1.0) >= 0.5:
                self._power_before_off[target] = self.state.get((target, "power_w"), 0.0)
            self.state[(target, "outlet_on")] = 0.0
            if (target, "power_w") in self.state:
                self.state[(target, "power_w")] = 0.0
        elif kind in (ActionKind.OUTLET_ON, ActionKind.OUTLET_CYCLE):
            self.state[(target, "outlet_on")] = 1.0
            if target in self._power_before_off:
                self.state[(target, "power_w")] = self._power_before_off.pop(target)
        elif action.value is None:
            ok, message = False, f"{kind} needs a value"
        elif kind is ActionKind.PSU_SETPOINT:
            self.state[(target, "setpoint_w")] = action.value
        elif kind is ActionKind.POWER_CAP:
            self.state[(target, "power_cap_w")] = action.value
            if (target, "power_w") in self.state:
                self.state[(target, "power_w")] = min(self.state[(target, "power_w")], action.value)
        elif kind is ActionKind.COOLING_SETPOINT:
            self.state[(target, "inlet_temp_c")] = action.value
        else:
            ok, message = False, f"unsupported {kind}"
        return ActionResult(command_id=action.command_id, ok=ok, message=message, t_s=self.now_s())

    async def close(self) -> None:
        """Nothing to release."""
