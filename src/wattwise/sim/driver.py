"""``TwinDriver``: the twin behind the same :class:`wattwise.drivers.base.Driver` contract as hardware.

The controller reads readings and applies actions through it exactly as it would through a
NUT, Redfish or orchestrator driver; it cannot tell the twin from the floor. Time is the twin's:
pair it with a :class:`wattwise.model.clock.SimClock` and step the twin from the loop (or let
``advance_on_read`` step it up to the clock's time on every read).
"""

from __future__ import annotations

from wattwise.errors import DeviceUnavailable
from wattwise.model.clock import Clock
from wattwise.model.values import Action, ActionKind, ActionResult, Reading
from wattwise.sim.actions import HANDLERS
from wattwise.sim.twin import Twin


class TwinDriver:
    """Driver over a :class:`Twin`.

    Args:
        twin: The simulated site.
        clock: When given, each ``read()`` first steps the twin up to ``clock.now_s()``.
        name: Driver name.
        kinds: Device kinds to report (``None``: all; see :meth:`Twin.readings`).
    """

    def __init__(
        self, twin: Twin, clock: Clock | None = None, name: str = "twin", kinds: tuple[str, ...] | None = None
    ):
        self.twin = twin
        self.clock = clock
        self.name = name
        self.kinds = kinds
        self._closed = False

    def supports(self, kind: ActionKind) -> bool:
        """Every action kind the twin implements."""
        return kind in HANDLERS

    def _catch_up(self) -> None:
        if self.clock is None:
            return
        dt = self.twin.params.step_s
        while self.twin.t_s + dt <= self.clock.now_s() + 1e-9:
            self.twin.step(dt)

    async def read(self) -> list[Reading]:
        """All current readings of the twin.

        Raises:
            DeviceUnavailable: The driver was closed.
        """
        if self._closed:
            raise DeviceUnavailable("twin driver is closed", device_id=self.twin.site.id)
        self._catch_up()
        return self.twin.readings(kinds=self.kinds)

    async def apply(self, action: Action) -> ActionResult:
        """Apply one action; ``ok=False`` with a message when the twin refuses it.

        Raises:
            DeviceUnavailable: The driver was closed.
        """
        if self._closed:
            raise DeviceUnavailable("twin driver is closed", device_id=action.target_id)
        self._catch_up()
        return self.twin.apply(action)

    async def close(self) -> None:
        """Mark the driver closed (the twin itself lives on)."""
        self._closed = True
