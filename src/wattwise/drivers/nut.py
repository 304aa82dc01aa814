"""NutDriver: UPS, ePDU and ATS over the NUT network protocol, behind the one Driver protocol.

Readings come from ``LIST VAR`` (one round trip per poll); outlet switching goes through
tracked instant commands, so an ``ActionResult`` reports what the device really did.

Action mapping (``target_id`` is the NUT device or one of its outlets):

====================  ==========================  ==========================
ActionKind            target = outlet N           target = the device
====================  ==========================  ==========================
``OUTLET_OFF``        ``outlet.N.load.off``       ``load.off``
``OUTLET_ON``         ``outlet.N.load.on``        ``load.on``
``OUTLET_CYCLE``      ``outlet.N.load.cycle``     ``shutdown.return``
====================  ==========================  ==========================
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from wattwise.drivers.base import DeviceHealth
from wattwise.drivers.health import HealthTracker
from wattwise.drivers.nut_client import NutClient, NutCommandError, NutEndpoint
from wattwise.drivers.nut_vars import NutVarParser, UpsStatus, VarProblem
from wattwise.drivers.retry import RetryPolicy, call_with_retries
from wattwise.errors import DeviceUnavailable, DriverError
from wattwise.model.values import Action, ActionKind, ActionResult, Reading

logger = logging.getLogger(__name__)

__all__ = ["NutDriver", "UpsStatus"]  # UpsStatus: the bits of the ``ups_status_flags`` metric

_SUPPORTED = frozenset({ActionKind.OUTLET_OFF, ActionKind.OUTLET_ON, ActionKind.OUTLET_CYCLE})
_OUTLET_CMD = {
    ActionKind.OUTLET_OFF: "load.off",
    ActionKind.OUTLET_ON: "load.on",
    ActionKind.OUTLET_CYCLE: "load.cycle",
}
_DEVICE_CMD = {
    ActionKind.OUTLET_OFF: "load.off",
    ActionKind.OUTLET_ON: "load.on",
    ActionKind.OUTLET_CYCLE: "shutdown.return",
}


class NutDriver:
    """One NUT device (``ups_name`` on an upsd) as a wattwise Driver.

    Args:
        device_id: Site id of the device.
        ups_name: Its name on upsd.
        endpoint: The upsd to talk to (host, port, login, TLS).
        outlet_ids: Site ids of outlets by NUT outlet number.
        retry: Timeout, attempts and back-off per call.
        now_s: Time source for reading timestamps and staleness.
    """

    def __init__(
        self,
        device_id: str,
        ups_name: str,
        endpoint: NutEndpoint,
        *,
        outlet_ids: Mapping[int, str] | None = None,
        retry: RetryPolicy | None = None,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        self.name = f"nut:{device_id}"
        self.device_id = device_id
        self.ups_name = ups_name
        self.endpoint = endpoint
        self.retry = retry or RetryPolicy()
        self.now_s = now_s
        self.parser = NutVarParser(device_id, outlet_ids)
        self.tracker = HealthTracker(device_id, now_s)
        self.last_problems: list[VarProblem] = []
        self._client = NutClient(endpoint, device_id)
        self._outlet_numbers = {v: k for k, v in self.parser.outlet_ids.items()}

    def supports(self, kind: ActionKind) -> bool:
        """Outlet off/on/cycle (and whole-load off/on/shutdown.return)."""
        return kind in _SUPPORTED

    def health(self) -> DeviceHealth:
        """Availability as last seen."""
        return self.tracker.health()

    async def read(self) -> list[Reading]:
        """One ``LIST VAR`` mapped to readings; per-variable problems go to ``last_problems``.

        Raises:
            DriverError: upsd is unreachable, refused us, or the UPS is unknown/stale.
        """
        try:
            variables = await call_with_retries(
                self._list_var,
                self.retry,
                what=f"LIST VAR {self.ups_name}",
                device_id=self.device_id,
                url=self.endpoint.url,
            )
        except DriverError as err:
            self.tracker.failed(err)
            raise
        readings, problems = self.parser.parse(variables, self.now_s())
        if problems and problems != self.last_problems:
            logger.info("device %s: %d NUT variables unparsable, e.g. %s", self.device_id, len(problems), problems[0])
        self.last_problems = problems
        self.tracker.ok()
        return readings

    async def _list_var(self) -> dict[str, str]:
        try:
            return await self._client.list_var(self.ups_name)
        except TimeoutError:
            await self._client.close()  # a half-read answer would desynchronise the next request
            raise
        except DeviceUnavailable:
            await self._client.close()
            raise

    def command_for(self, action: Action) -> str:
        """The NUT instant command that carries out ``action``.

        Raises:
            ValueError: The action kind or target is not one this device has.
        """
        if action.kind not in _SUPPORTED:
            raise ValueError(f"NUT cannot apply {action.kind}")
        if action.target_id == self.device_id:
            return _DEVICE_CMD[action.kind]
        number = self._outlet_numbers.get(action.target_id) or _default_outlet_number(self.device_id, action.target_id)
        if number is None:
            raise ValueError(f"{action.target_id} is not an outlet of {self.device_id}")
        return f"outlet.{number}.{_OUTLET_CMD[action.kind]}"

    async def apply(self, action: Action) -> ActionResult:
        """Send the instant command and wait for the driver's tracked outcome.

        Raises:
            DriverError: upsd could not be reached or refused our login.
        """
        try:
            cmd = self.command_for(action)
        except ValueError as err:
            return ActionResult(command_id=action.command_id, ok=False, message=str(err), t_s=self.now_s())
        try:
            status = await call_with_retries(
                lambda: self._client.instcmd(self.ups_name, cmd),
                self.retry,
                what=f"INSTCMD {cmd}",
                device_id=self.device_id,
                url=self.endpoint.url,
            )
        except NutCommandError as err:
            return ActionResult(command_id=action.command_id, ok=False, message=f"{cmd}: {err.code}", t_s=self.now_s())
        ok = status == "SUCCESS"
        logger.info("device %s: INSTCMD %s -> %s (command %s)", self.device_id, cmd, status, action.command_id)
        return ActionResult(command_id=action.command_id, ok=ok, message=f"{cmd}: {status}", t_s=self.now_s())

    async def close(self) -> None:
        """Log out and close the connection."""
        await self._client.close()


def _default_outlet_number(device_id: str, target_id: str) -> int | None:
    prefix = f"{device_id}.outlet"
    if target_id.startswith(prefix) and target_id[len(prefix) :].isdigit():
        return int(target_id[len(prefix) :])
    return None
