"""``wattwise demo --wire``: the demo's controller reads the twin over real protocol endpoints.

The twin's devices are served on 127.0.0.1 (real upsd for UPS and ATS, APC PowerNet SNMP for
PDUs, Redfish for servers, Modbus TCP for racklets; :func:`start_endpoints`) and polled by
one coordinator per device (:class:`PolledDriver`), exactly as ``wattwise run`` polls the floor.
What has no wire protocol in the twin stays in-process: services and feeds are read from, and
service sheds, restores, throttles and migrations sent to, the twin's own driver, standing in
for the orchestrator and the utility meters (as in ``tests/control/test_e2e_wire.py``).

Event sources (UPS and ATS over NUT, racklets over Modbus) are polled at the demo's poll
period; bulk telemetry (PDUs over SNMP, server BMCs over Redfish) every ``BULK_PERIOD_S``, as
a site's endpoints file sets it and as ``bench/event_ack.py`` polls the floor: at one period
for everything, the 2 000-server example took tens of seconds per cycle on a small machine
(``bench/demo_wire.py``) and its commands timed out behind the polls.

Wire drivers stamp readings with the wall clock, so ``--wire`` runs at ``--speed 1`` only. The
in-process twin stays the default.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from wattwise.drivers.base import Driver
from wattwise.drivers.polled import PolledDriver
from wattwise.model.clock import Clock
from wattwise.model.values import Action
from wattwise.sim.driver import TwinDriver
from wattwise.sim.emulators.stack import Endpoints, start_endpoints
from wattwise.sim.twin import Twin

BULK_PERIOD_S = 10.0
"""Poll period of bulk telemetry (SNMP PDUs, Redfish BMCs), s; never shorter than the demo's own."""
EVENT_PROTOCOLS = frozenset({"nut", "modbus"})
"""Protocols of the devices whose readings carry power events (on battery, ATS transfer, leaks)."""


def route(routes: dict[str, Driver], orchestrator: Driver, action: Action) -> Driver | None:
    """The endpoint serving the target when it can apply the kind; else the orchestrator."""
    owner = routes.get(action.target_id)
    if owner is not None and owner.supports(action.kind):
        return owner
    return orchestrator if orchestrator.supports(action.kind) else None


@dataclass
class WireDrivers:
    """The demo's drivers over the wire, and how to route and stop them."""

    endpoints: Endpoints
    polled: PolledDriver
    orchestrator: TwinDriver
    routes: dict[str, Driver]

    @property
    def drivers(self) -> list[Driver]:
        """What the controller reads: the polled endpoints and the orchestrator."""
        return [self.polled, self.orchestrator]

    def route(self, action: Action) -> Driver | None:
        """The endpoint serving the target when it can apply the kind; else the orchestrator."""
        return route(self.routes, self.orchestrator, action)

    async def close(self) -> None:
        """Stop the coordinators, the endpoints and upsd (by PID)."""
        await self.polled.close()
        await self.orchestrator.close()
        await self.endpoints.stop()


def poll_periods(
    endpoints: Endpoints, poll_period_s: float, bulk_period_s: float = BULK_PERIOD_S
) -> list[tuple[Driver, float]]:
    """Each endpoint's driver with its period: event sources at ``poll_period_s``, bulk slower."""
    bulk_s = max(poll_period_s, bulk_period_s)
    return [(e.client, poll_period_s if e.protocol in EVENT_PROTOCOLS else bulk_s) for e in endpoints.endpoints]


async def wire_drivers(twin: Twin, clock: Clock, poll_period_s: float) -> WireDrivers:
    """Serve the twin on loopback and build the drivers that poll it (periods: :func:`poll_periods`).

    Raises:
        FileNotFoundError: upsd (Debian nut-server) is not installed.
    """
    endpoints = await start_endpoints(TwinDriver(twin, clock=clock), twin.site)
    routes = {d: e.client for e in endpoints.endpoints for d in e.device_ids}
    orchestrator = TwinDriver(twin, clock=clock, name="orchestrator", kinds=("service", "feed"))
    polled = PolledDriver(
        poll_periods(endpoints, poll_period_s), clock, partial(route, routes, orchestrator), name="wire"
    )
    await polled.prime()  # the controller's first decision must not be made on no data
    return WireDrivers(endpoints, polled, orchestrator, routes)
