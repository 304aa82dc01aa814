"""FanoutDriver: many protocol drivers behind one Driver (read all, route each action to its owner).

Used to put a whole site "on the wire": the controller talks to one Driver while readings come
from NUT, Redfish, SNMP and Modbus endpoints. A failing member does not fail the read unless
every member fails; its error is kept in ``errors`` (staleness stays visible per member).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from wattwise.drivers.base import Driver
from wattwise.errors import DeviceUnavailable, DriverError
from wattwise.model.values import Action, ActionKind, ActionResult, Reading

logger = logging.getLogger(__name__)


class FanoutDriver:
    """Several drivers as one.

    Args:
        drivers: The member drivers.
        routes: Target id → the member that can act on it.
        name: Driver name.
    """

    def __init__(self, drivers: Sequence[Driver], routes: Mapping[str, Driver], name: str = "fanout") -> None:
        self.name = name
        self.drivers = list(drivers)
        self.routes = dict(routes)
        self.errors: dict[str, DriverError] = {}

    def supports(self, kind: ActionKind) -> bool:
        """Whether any member supports ``kind``."""
        return any(d.supports(kind) for d in self.drivers)

    async def read(self) -> list[Reading]:
        """Readings of every member that answered.

        Raises:
            DriverError: Every member failed.
        """
        results = await asyncio.gather(*(d.read() for d in self.drivers), return_exceptions=True)
        out: list[Reading] = []
        for d, result in zip(self.drivers, results, strict=True):
            if isinstance(result, DriverError):
                if d.name not in self.errors:
                    logger.warning("%s: member %s failed: %s", self.name, d.name, result)
                self.errors[d.name] = result
            elif isinstance(result, BaseException):
                raise result
            else:
                if self.errors.pop(d.name, None) is not None:
                    logger.info("%s: member %s is back", self.name, d.name)
                out.extend(result)
        if self.drivers and len(self.errors) == len(self.drivers):
            raise next(iter(self.errors.values()))
        return out

    async def apply(self, action: Action) -> ActionResult:
        """Send the action to the member that owns its target.

        Raises:
            DriverError: That member could not deliver it.
        """
        member = self.routes.get(action.target_id)
        if member is None or not member.supports(action.kind):
            return ActionResult(
                command_id=action.command_id,
                ok=False,
                message=f"no endpoint can apply {action.kind} to {action.target_id}",
            )
        return await member.apply(action)

    async def close(self) -> None:
        """Close every member."""
        for d in self.drivers:
            try:
                await d.close()
            except DeviceUnavailable as err:
                logger.debug("closing %s: %s", d.name, err)
