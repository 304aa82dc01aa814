"""Per-device availability and staleness, kept as data by every driver (HA ``last_update_success``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from wattwise.drivers.base import DeviceHealth

logger = logging.getLogger(__name__)


class HealthTracker:
    """Records poll outcomes of one device (transitions logged at DEBUG; the poller logs them for operators).

    Args:
        device_id: The device tracked.
        now_s: Time source, seconds (wall clock by default; a ``Clock.now_s`` in the twin).
    """

    def __init__(self, device_id: str, now_s: Callable[[], float] = time.time) -> None:
        self.device_id = device_id
        self.now_s = now_s
        self._available = False
        self._last_ok_t_s: float | None = None
        self._last_error = ""
        self._failures = 0

    def ok(self) -> None:
        """Record a successful poll."""
        if self._failures:
            logger.debug("device %s recovered after %d failed polls", self.device_id, self._failures)
        self._available = True
        self._last_ok_t_s = self.now_s()
        self._last_error = ""
        self._failures = 0

    def failed(self, error: Exception) -> None:
        """Record a failed poll; logs the first failure of a streak only."""
        if self._failures == 0:
            logger.debug("device %s unavailable: %s", self.device_id, error)
        self._failures += 1
        self._available = False
        self._last_error = str(error)

    @property
    def failures(self) -> int:
        """Consecutive failed polls."""
        return self._failures

    def health(self) -> DeviceHealth:
        """The device's health as last seen."""
        return DeviceHealth(self.device_id, self._available, self._last_ok_t_s, self._last_error)

    def staleness_s(self) -> float:
        """Seconds since the last successful poll (``inf`` if never)."""
        if self._last_ok_t_s is None:
            return float("inf")
        return max(0.0, self.now_s() - self._last_ok_t_s)
