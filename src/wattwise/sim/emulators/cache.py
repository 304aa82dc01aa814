"""CachedDriver: shares one ``read()`` of a backing Driver among many endpoint requests.

A whole-site twin read costs milliseconds; hundreds of emulated devices each asking for it on
every protocol request would multiply that. Reads younger than ``max_age_s`` are reused and
any ``apply`` invalidates the cache, so a command is visible on the very next read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection

from wattwise.drivers.base import Driver
from wattwise.model.values import Action, ActionKind, ActionResult, Reading


class CachedDriver:
    """A Driver proxy with a short read cache.

    Args:
        driver: The backing Driver (usually ``TwinDriver``).
        max_age_s: How long one read is reused (wall time).
        monotonic_s: Time source for the cache age.
    """

    def __init__(
        self, driver: Driver, max_age_s: float = 0.05, monotonic_s: Callable[[], float] = time.monotonic
    ) -> None:
        self.driver = driver
        self.name = f"cached:{driver.name}"
        self.max_age_s = max_age_s
        self.monotonic_s = monotonic_s
        self._cached: list[Reading] | None = None
        self._index: dict[str, list[Reading]] | None = None
        self._at_s = 0.0
        self._lock = asyncio.Lock()

    def supports(self, kind: ActionKind) -> bool:
        """As the backing driver."""
        return self.driver.supports(kind)

    async def read(self) -> list[Reading]:
        """The backing driver's readings, at most ``max_age_s`` old."""
        async with self._lock:
            if self._cached is None or self.monotonic_s() - self._at_s > self.max_age_s:
                self._cached = await self.driver.read()
                self._index = None
                self._at_s = self.monotonic_s()
            return self._cached

    async def read_for(self, device_ids: Collection[str]) -> list[Reading]:
        """Readings of ``device_ids`` only, from an index built once per backing read.

        Each endpoint serves a handful of devices; without the index every request would scan
        the whole site (quadratic in the number of endpoints).
        """
        readings = await self.read()
        if self._index is None:
            index: dict[str, list[Reading]] = {}
            for r in readings:
                index.setdefault(r.device_id, []).append(r)
            self._index = index
        return [r for d in device_ids for r in self._index.get(d, ())]

    async def apply(self, action: Action) -> ActionResult:
        """Apply through the backing driver and drop the cache."""
        result = await self.driver.apply(action)
        self._cached = self._index = None
        return result

    async def close(self) -> None:
        """Close the backing driver."""
        await self.driver.close()


async def read_devices(driver: Driver, device_ids: Collection[str]) -> list[Reading]:
    """Readings of some devices: indexed when ``driver`` is a :class:`CachedDriver`, filtered otherwise."""
    if isinstance(driver, CachedDriver):
        return await driver.read_for(device_ids)
    wanted = set(device_ids)
    return [r for r in await driver.read() if r.device_id in wanted]
