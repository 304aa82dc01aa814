"""The one error tree of wattwise.

Every exception wattwise raises on purpose derives from :class:`WattwiseError`::

    WattwiseError
    ├── ConfigError                 bad site file, bad settings
    │   └── SiteValidationError     every problem of one site file, with file, path, rule
    ├── DriverError                 device or orchestrator I/O (translated once, in drivers)
    │   ├── DeviceUnavailable       transient: dead, slow or unreachable peer; retry
    │   ├── DeviceAuthError         credentials refused; needs a human
    │   └── DeviceProtocolError     the peer answered something we cannot parse
    ├── TelemetryError              a reading or payload that cannot be accepted
    ├── StoreError                  the time-series store failed
    ├── PredictionError             a model cannot be fitted or used on this input
    ├── ActuationRefused            an interlock refused an action (reason attached)
    └── LeadershipLost              this controller is no longer the leader (fenced)

Decision policies never raise for infeasible situations: they return a ``Decision`` whose
status is ``infeasible``.
"""

from __future__ import annotations


class WattwiseError(Exception):
    """Root of every error wattwise raises on purpose."""


class ConfigError(WattwiseError):
    """A configuration input (site file, settings, scenario) is invalid."""


class DriverError(WattwiseError):
    """Device or orchestrator I/O failed.

    Attributes:
        device_id: The device the driver was talking to, when known.
        url: The endpoint, with credentials scrubbed, when known.
    """

    def __init__(self, message: str, *, device_id: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.device_id = device_id
        self.url = url

    def __str__(self) -> str:
        base = super().__str__()
        where = ", ".join(f"{k}={v}" for k, v in (("device", self.device_id), ("url", self.url)) if v)
        return f"{base} ({where})" if where else base


class DeviceUnavailable(DriverError):
    """The device is dead, slow or unreachable; the call may succeed later."""


class DeviceAuthError(DriverError):
    """The device refused our credentials; a human must fix the configuration."""


class DeviceProtocolError(DriverError):
    """The device answered with a payload that does not follow its protocol."""


class TelemetryError(WattwiseError):
    """A reading or a bus payload cannot be accepted."""


class StoreError(WattwiseError):
    """The time-series store failed to read or write."""


class PredictionError(WattwiseError):
    """A model cannot be fitted or used on the given input."""


class ActuationRefused(WattwiseError):
    """An interlock refused an action.

    Attributes:
        command_id: The refused command.
        reason: Why it was refused, in words an operator can act on.
    """

    def __init__(self, reason: str, *, command_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_id = command_id


class LeadershipLost(WattwiseError):
    """This controller lost its leadership; its fencing token is no longer valid."""
