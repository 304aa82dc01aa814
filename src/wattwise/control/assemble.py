"""Assemble a controller from a site, drivers, a store and settings (the one place that wires it)."""

from __future__ import annotations

import atexit
import gc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from wattwise.act.actuator import Actuator, Router
from wattwise.act.base import Journal, Mode
from wattwise.act.interlocks import (
    CriticalClosureInterlock,
    DependencyOrderInterlock,
    FlapInterlock,
    Interlock,
    LimitInterlock,
)
from wattwise.control.loop import Controller
from wattwise.control.model_registry import StoreModelRegistry
from wattwise.control.models import NodeForecasts
from wattwise.control.pipeline import StoreJournal, StorePipeline
from wattwise.control.planner import PolicyPlanner
from wattwise.control.processors import ProcessorWatch
from wattwise.decide.allocation import MilpAllocationPolicy
from wattwise.decide.base import EfficiencyCurves, Policy, PowerState
from wattwise.decide.cooling import HeatFollowingCoolingPolicy
from wattwise.decide.index import SiteIndex
from wattwise.decide.load_sharing import CurveLoadSharingPolicy
from wattwise.decide.migration import PredictiveMigrationPolicy
from wattwise.drivers.base import Driver
from wattwise.model.clock import Clock
from wattwise.model.graph import SiteGraph
from wattwise.model.site import Site
from wattwise.model.values import Action, ActionKind
from wattwise.sim.curves import psu_curve_table
from wattwise.store.base import TimeSeriesStore
from wattwise.telemetry.validate import ReadingValidator, site_device_ids


@dataclass(frozen=True)
class Assembly:
    """A wired controller and the parts an API or a test needs to look at."""

    controller: Controller
    planner: PolicyPlanner
    actuator: Actuator
    pipeline: StorePipeline
    journal: Journal
    graph: SiteGraph
    index: SiteIndex


def tune_gc_for_controller() -> None:
    """What a long-running controller process does once its site is loaded and assembled.

    The site model, graph and index are long-lived: ``gc.freeze()`` moves them out of the
    cyclic collector's reach, and a higher young-generation threshold keeps a decision's
    10^4-10^5 new ``Action`` objects from triggering repeated full collections. Measured in
    ``bench/reports/decide.md`` vs ``decide_default_gc.md``: allocation p99 at 10k servers
    38 ms instead of 130 ms, at 100k 0.49 s instead of 1.24 s.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    atexit.register(gc.unfreeze)  # let interpreter shutdown finalise the frozen objects


def efficiency_curves(index: SiteIndex) -> EfficiencyCurves:
    """The real 80 PLUS curves of the site's PSU types, as decide/ wants them."""
    grid, table = psu_curve_table(list(index.curve_names))
    return EfficiencyCurves(load_frac=np.tile(grid, (len(index.curve_names), 1)), efficiency_frac=table)


def default_policies() -> list[Policy[PowerState]]:
    """Every power-chain policy, in the order the planner runs them (ADR 0003).

    Power-event allocation (MILP with greedy fallback); PSU load sharing (parks one PSU of a
    2N pair on mains where that loses less, feed sides balanced, spread over all PSUs on
    battery); predictive migration away from feeds, racks, racklets and nodes forecast to
    overload or fail; cooling set-points that follow heat, leak isolation and shift-or-cap
    before a thermal trip. Event-processor shifting decides on processor state, not power
    state: the planner runs it after these when the site has event processors
    (:class:`~wattwise.control.processors.ProcessorWatch`).
    """
    return [
        MilpAllocationPolicy(time_limit_s=0.5),
        CurveLoadSharingPolicy(),
        PredictiveMigrationPolicy(),
        HeatFollowingCoolingPolicy(),
    ]


DEFAULT_PERIODS_S = {"curve_load_sharing": 300.0, "predictive_migration": 30.0}
"""Load sharing re-plans every 5 minutes, migration every 30 s (both at once on an event);
allocation and cooling run on every decision."""


def route_by_support(drivers: Sequence[Driver]) -> Router:
    """First driver that supports the action's kind."""

    def route(action: Action) -> Driver | None:
        return next((d for d in drivers if d.supports(action.kind)), None)

    return route


def assemble(
    site: Site,
    drivers: Sequence[Driver],
    store: TimeSeriesStore,
    clock: Clock,
    mode: Mode = Mode.OBSERVE,
    *,
    policies: Sequence[Policy[PowerState]] | None = None,
    router: Router | None = None,
    approval_kinds: frozenset[ActionKind] = frozenset(),
    token: Callable[[], int | None] = lambda: None,
    is_leader: Callable[[], bool] = lambda: True,
    poll_period_s: float = 1.0,
    decide_period_s: float = 5.0,
    min_dwell_s: float = 60.0,
    site_actions_per_min: int = 20_000,
    store_every_s: float = 0.0,
    node_forecasts: NodeForecasts | bool = False,
    model_reload_s: float = 60.0,
) -> Assembly:
    """Wire drivers → validation/store → planner → actuator into a controller.

    ``node_forecasts``: ``True`` forecasts each upstream node's load with the newest model
    ``wattwise train --store`` registered for it in ``store`` (checked every
    ``model_reload_s`` off the loop); a :class:`NodeForecasts` is used as given.
    """
    graph = SiteGraph(site)
    index = SiteIndex.from_site(site)
    forecasts = node_forecasts if isinstance(node_forecasts, NodeForecasts) else None
    if node_forecasts is True:
        forecasts = NodeForecasts(index, StoreModelRegistry(store), store, reload_s=model_reload_s)
    validator = ReadingValidator(site_device_ids(site), max_future_s=5.0, max_age_s=3600.0)
    pipeline = StorePipeline(validator, store, store_every_s=store_every_s)
    journal = StoreJournal(store)
    interlocks: list[Interlock] = [
        CriticalClosureInterlock(graph),
        DependencyOrderInterlock(graph),
        LimitInterlock(graph),
        FlapInterlock(min_dwell_s=min_dwell_s, per_site_per_min=site_actions_per_min),
    ]
    actuator = Actuator(
        mode,
        journal,
        router or route_by_support(drivers),
        interlocks,
        clock,
        approval_kinds=approval_kinds,
        token=token,
    )
    planner = PolicyPlanner(
        graph,
        index,
        policies or default_policies(),
        curves=efficiency_curves(index),
        periods_s=DEFAULT_PERIODS_S,
        processors=ProcessorWatch(site, index.server_ids) if site.event_processors else None,
        node_forecasts=forecasts,
    )
    controller = Controller(
        drivers,
        pipeline,
        planner,
        actuator,
        clock,
        poll_period_s=poll_period_s,
        decide_period_s=decide_period_s,
        is_leader=is_leader,
        expected_down=partial(switched_off_units, actuator, outlet_feeds(site, index)),
    )
    return Assembly(controller, planner, actuator, pipeline, journal, graph, index)


@dataclass(frozen=True)
class OutletFeeds:
    """What each outlet feeds, built once (the controller asks every tick).

    Attributes:
        psus: Outlet id → the PSUs (and racklet rectifiers) it feeds.
        units: Outlet id → the servers and racklets it feeds (through any of their inputs).
        unit_outlets: Server or racklet id → every outlet feeding it.
    """

    psus: Mapping[str, tuple[str, ...]]
    units: Mapping[str, tuple[str, ...]]
    unit_outlets: Mapping[str, tuple[str, ...]]


def outlet_feeds(site: Site, index: SiteIndex) -> OutletFeeds:
    """The outlet → PSU and outlet → unit maps of ``site``."""
    psus: dict[str, list[str]] = {}
    for psu, outlet in zip(index.psu_ids, index.psu_outlet_ids, strict=True):
        psus.setdefault(outlet, []).append(psu)
    unit_outlets: dict[str, tuple[str, ...]] = {}
    racklet_inputs = {r.id: tuple(p.input for p in r.power.psus) for r in site.racklets}
    for s in site.servers:
        if s.psus:
            unit_outlets[s.id] = tuple(p.input for p in s.psus)
    for r in site.racklets:
        unit_outlets[r.id] = racklet_inputs[r.id]
    rack_racklet = {r.id: r.racklet for r in site.racks if r.racklet is not None}
    for s in site.servers:
        racklet = rack_racklet.get(s.rack)
        if not s.psus and racklet in racklet_inputs:
            unit_outlets[s.id] = racklet_inputs[racklet]
    units: dict[str, list[str]] = {}
    for unit, outlets in unit_outlets.items():
        for o in outlets:
            units.setdefault(o, []).append(unit)
    return OutletFeeds({o: tuple(p) for o, p in psus.items()}, {o: tuple(u) for o, u in units.items()}, unit_outlets)


def switched_off_units(actuator: Actuator, feeds: OutletFeeds) -> frozenset[str]:
    """Units whose going down is the effect of the actuator's own commands.

    What it switched off or shed, the PSUs behind the outlets among them, and the servers and
    racklets left with no outlet on.
    """
    off = actuator.switched_off()
    if not off:
        return off
    out = set(off)
    for target in off:
        out.update(feeds.psus.get(target, ()))
        for unit in feeds.units.get(target, ()):
            if all(o in off for o in feeds.unit_outlets[unit]):
                out.add(unit)
    return frozenset(out)
