"""PolledDriver: a :class:`Poller` behind one Driver, so a loop reads what the coordinators gathered.

Each device keeps its own poll period and deadline in its coordinator; the controller's
``read()`` takes whatever arrived since its last read and never waits on a slow or dead device
(that device's staleness shows in :meth:`PolledDriver.health`). Actions go straight to the
device's own driver through ``route``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from wattwise.drivers.base import DeviceHealth, Driver
from wattwise.drivers.poller import Poller
from wattwise.model.clock import Clock
from wattwise.model.values import Action, ActionKind, ActionResult, Reading

logger = logging.getLogger(__name__)


class PolledDriver:
    """Readings from a poller's coordinators; actions to the device's own driver.

    Args:
        drivers: ``(driver, poll_period_s)`` pairs.
        clock: The poller's clock.
        route: Driver that owns an action's target (``None``: no driver can apply it).
        name: Driver name.
        max_concurrency: Polls in flight at once.
    """

    def __init__(
        self,
        drivers: Sequence[tuple[Driver, float]],
        clock: Clock,
        route: Callable[[Action], Driver | None],
        name: str = "poller",
        max_concurrency: int = 256,
    ) -> None:
        self.name = name
        self.route = route
        self.members = [d for d, _ in drivers]
        self.poller = Poller(drivers, clock, sink=self._take, max_concurrency=max_concurrency)
        self._buffer: list[Reading] = []
        self._task: asyncio.Task[None] | None = None
        self._first_delay_s = 0.0
        self.listeners: list[Callable[[Sequence[Reading]], object]] = []
        """Called with every batch as it arrives (``Controller.offer`` wakes the loop on an event)."""

    def _take(self, _name: str, readings: Sequence[Reading]) -> None:
        self._buffer.extend(readings)
        for listener in self.listeners:
            listener(readings)

    async def prime(self) -> int:
        """Poll every device once now, each under its deadline; returns how many answered.

        The controller's first read then holds every device that answered, so its first
        decision is not made on no data. The coordinators, started afterwards, wait one
        (shortest) period before their own first poll, so nothing is read twice at once.
        """
        results = await self.poller.poll_all()
        self._first_delay_s = min((c.period_s for c in self.poller.coordinators), default=0.0)
        return sum(1 for r in results if r.ok)

    def start(self) -> None:
        """Start every coordinator (call inside the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(self._first_delay_s))

    async def _run(self, delay_s: float) -> None:
        await self.poller.clock.sleep_s(delay_s)
        await self.poller.run()

    def hold_bulk(self, held: bool) -> None:
        """Pause or resume bulk-telemetry polls (``Controller.acting`` calls it around a response)."""
        self.poller.hold_bulk(held)

    def supports(self, kind: ActionKind) -> bool:
        """Whether any member supports ``kind``."""
        return any(d.supports(kind) for d in self.members)

    async def read(self) -> list[Reading]:
        """Readings gathered since the last read (starts the poller on first use)."""
        self.start()
        out, self._buffer = self._buffer, []
        return out

    async def apply(self, action: Action) -> ActionResult:
        """Send the action to the driver that owns its target.

        Raises:
            DriverError: That driver could not deliver it.
        """
        driver = self.route(action)
        if driver is None:
            return ActionResult(
                command_id=action.command_id,
                ok=False,
                message=f"no endpoint can apply {action.kind} to {action.target_id}",
            )
        return await driver.apply(action)

    def health(self) -> list[DeviceHealth]:
        """Availability and last success of every member, as data."""
        return self.poller.health()

    async def close(self) -> None:
        """Stop the coordinators now (a poll in flight is cancelled); members are closed by their owner."""
        self.poller.stop()
        if self._task is not None:
            # Coordinators sleep a whole period between polls: waiting for them would hold a
            # shutdown for up to the longest period, so cancel instead.
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
