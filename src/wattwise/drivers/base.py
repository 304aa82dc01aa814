"""The one contract every driver implements: the twin, NUT, Redfish, SNMP, Modbus, orchestrators.

A driver reads readings and applies actions, translating to and from its protocol at exactly
this boundary. Retries, timeouts and back-off live inside drivers; what leaves a driver is a
``Reading``, an ``ActionResult`` or a :class:`wattwise.errors.DriverError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from wattwise.model.values import Action, ActionKind, ActionResult, Reading


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """Availability of one device as its driver last saw it (staleness is data).

    Attributes:
        device_id: The device.
        available: Whether the last poll succeeded.
        last_ok_t_s: Time of the last successful poll, or ``None`` if never.
        last_error: The last error message, empty when healthy.
    """

    device_id: str
    available: bool
    last_ok_t_s: float | None
    last_error: str = ""


@runtime_checkable
class Driver(Protocol):
    """Reads readings from, and applies actions to, one or more devices."""

    name: str

    def supports(self, kind: ActionKind) -> bool:
        """Whether this driver can apply actions of ``kind``."""
        ...

    async def read(self) -> list[Reading]:
        """Poll the devices once.

        Raises:
            DriverError: The peer is unavailable, refused auth, or answered garbage.
        """
        ...

    async def apply(self, action: Action) -> ActionResult:
        """Apply one action; ``ok=False`` with a message when the device refuses it.

        Raises:
            DriverError: The action could not be delivered (the caller decides what next).
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class BatchDriver(Protocol):
    """A driver that can carry several actions in one exchange (an SNMP SET of many varbinds).

    The actuator hands such a driver every action of a layer it owns at once; what it returns
    answers each action, in order.
    """

    async def apply_many(self, actions: Sequence[Action]) -> list[ActionResult]:
        """Apply ``actions``; one result per action, in the same order.

        Raises:
            DriverError: None of them could be delivered (the caller decides what next).
        """
        ...
