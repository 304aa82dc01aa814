"""Interlocks: last line of defence between a decision and a device.

Each interlock returns ``None`` to allow an action or a reason to refuse it. They refuse any
action that would drop a critical service or its dependencies, push a breaker, PDU, UPS or
feed past its limit, or flap a device (minimum dwell, rate limits per device and per site).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from wattwise.model.graph import SiteGraph
from wattwise.model.site import Tier
from wattwise.model.values import Action, ActionKind

_DROPS_SERVICE = {ActionKind.SERVICE_SHED, ActionKind.WORKLOAD_STOP}
_DROPS_SERVER = {ActionKind.OUTLET_OFF, ActionKind.NODE_DRAIN}
_ADDS_LOAD = {ActionKind.SERVICE_RESTORE, ActionKind.WORKLOAD_START, ActionKind.OUTLET_ON}
_LEVELS = {ActionKind.THROTTLE, ActionKind.POWER_CAP}
_OPPOSITE = {
    ActionKind.SERVICE_SHED: ActionKind.SERVICE_RESTORE,
    ActionKind.SERVICE_RESTORE: ActionKind.SERVICE_SHED,
    ActionKind.OUTLET_OFF: ActionKind.OUTLET_ON,
    ActionKind.OUTLET_ON: ActionKind.OUTLET_OFF,
    ActionKind.WORKLOAD_STOP: ActionKind.WORKLOAD_START,
    ActionKind.WORKLOAD_START: ActionKind.WORKLOAD_STOP,
}


@dataclass(frozen=True)
class InterlockContext:
    """What interlocks know about the site right now.

    Attributes:
        t_s: Now.
        headroom_w: Capacity minus load per chain node (feeds, ATS, UPS, PDUs), W.
        service_power_w: Present or nominal power of each service, W.
        outlets_off: Outlets currently switched off.
        power_event: True while a power event (utility loss, on battery) is in progress.
        services_down: Services shed now (from readings, updated as a tick's sheds go out).
        restores_planned: Services the current decisions restore (higher tiers go first).
        shed_this_tick: Services whose shed goes out in this tick (not yet confirmed by a reading).

    The three sets are frozen, except inside the actuator while it checks one layer (see
    ``wattwise.act.actuator``), where they grow as each action is sent.
    """

    t_s: float
    headroom_w: Mapping[str, float] = field(default_factory=dict)
    service_power_w: Mapping[str, float] = field(default_factory=dict)
    outlets_off: AbstractSet[str] = frozenset()
    power_event: bool = False
    services_down: AbstractSet[str] = frozenset()
    restores_planned: frozenset[str] = frozenset()
    shed_this_tick: AbstractSet[str] = frozenset()


def _feeds(outlet: str, action: Action, ctx: InterlockContext) -> bool:
    """Whether ``outlet`` still feeds its server once ``action`` (an outlet-off) is done.

    Checked per outlet rather than on ``ctx.outlets_off | {target}``: that copy, per action,
    made a layer of thousands of outlet-offs quadratic.
    """
    return outlet != action.target_id and outlet not in ctx.outlets_off


def server_services(graph: SiteGraph) -> dict[str, frozenset[str]]:
    """Server id → the services with a workload on it (site-file placement)."""
    out: dict[str, set[str]] = defaultdict(set)
    for w in graph.site.workloads:
        out[w.server].add(w.service)
    return {k: frozenset(v) for k, v in out.items()}


def server_outlets(graph: SiteGraph) -> dict[str, tuple[str, ...]]:
    """Server id → the outlets feeding it (its own PSUs', or its racklet's rectifiers')."""
    return {s: tuple(path[1] for path in graph.power_path(s)) for s in graph.server_ids}


class Interlock(Protocol):
    """Allows (None) or refuses (a reason) one action."""

    def check(self, action: Action, ctx: InterlockContext) -> str | None:
        """Reason to refuse, or None."""
        ...

    def record(self, action: Action, ctx: InterlockContext) -> None:
        """Note an action that was executed (for rate and dwell state)."""
        ...


class CriticalClosureInterlock:
    """Refuses anything that would stop a critical service or a service a critical one needs."""

    def __init__(self, graph: SiteGraph) -> None:
        self.graph = graph

    @cached_property
    def protected(self) -> frozenset[str]:
        """Critical services and their whole dependency closures."""
        out: set[str] = set()
        for s in self.graph.site.services:
            if s.tier is Tier.CRITICAL:
                out |= self.graph.dependency_closure(s.id)
        return frozenset(out)

    @cached_property
    def _server_services(self) -> dict[str, frozenset[str]]:
        return server_services(self.graph)

    @cached_property
    def _workload_service(self) -> dict[str, str]:
        return {w.id: w.service for w in self.graph.site.workloads}

    @cached_property
    def _server_outlets(self) -> dict[str, tuple[str, ...]]:
        return server_outlets(self.graph)

    def check(self, action: Action, ctx: InterlockContext) -> str | None:
        """Refuse dropping a protected service."""
        if action.kind is ActionKind.SERVICE_SHED and action.target_id in self.protected:
            return f"{action.target_id} is critical or a dependency of a critical service"
        if action.kind is ActionKind.WORKLOAD_STOP:
            svc = self._workload_service.get(action.target_id)
            if svc in self.protected:
                return f"workload {action.target_id} runs {svc}, which a critical service needs"
        if action.kind in _DROPS_SERVER:
            return self._check_server_drop(action, ctx)
        return None

    def _check_server_drop(self, action: Action, ctx: InterlockContext) -> str | None:
        if action.kind is ActionKind.NODE_DRAIN:
            servers = [action.target_id]
        else:
            servers = [self.graph.server_ids[i] for i in self.graph.servers_below(action.target_id)]
        for server in servers:
            hit = self._server_services.get(server, frozenset()) & self.protected
            if not hit:
                continue
            still_fed = any(_feeds(o, action, ctx) for o in self._server_outlets.get(server, ()))
            if action.kind is ActionKind.NODE_DRAIN or not still_fed:
                return f"{server} would lose power but runs {', '.join(sorted(hit))}, needed by critical services"
        return None

    def record(self, action: Action, ctx: InterlockContext) -> None:
        """Stateless."""


class LimitInterlock:
    """Refuses load-adding actions that would push any node on the path past its capacity."""

    def __init__(self, graph: SiteGraph, margin_frac: float = 0.02) -> None:
        self.graph = graph
        self.margin_frac = margin_frac

    @cached_property
    def _service_nodes(self) -> dict[str, frozenset[str]]:
        nodes: dict[str, set[str]] = defaultdict(set)
        for w in self.graph.site.workloads:
            for path in self.graph.power_path(w.server):
                nodes[w.service].update(path[2:])
        return {k: frozenset(v) for k, v in nodes.items()}

    def check(self, action: Action, ctx: InterlockContext) -> str | None:
        """Refuse a restore whose estimated power exceeds any headroom on its path."""
        if action.kind is not ActionKind.SERVICE_RESTORE:
            return None
        delta_w = ctx.service_power_w.get(action.target_id, 0.0)
        for node in sorted(self._service_nodes.get(action.target_id, frozenset())):
            room_w = ctx.headroom_w.get(node)
            if room_w is None:
                continue
            cap_w = self.graph.node_capacity_w[self.graph.node_index[node]] if node in self.graph.node_index else 0.0
            if delta_w > room_w - self.margin_frac * cap_w:
                return f"restoring {action.target_id} adds ~{delta_w:.0f} W; {node} has {room_w:.0f} W headroom"
        return None

    def record(self, action: Action, ctx: InterlockContext) -> None:
        """Stateless."""


class FlapInterlock:
    """Minimum dwell between opposite actions on one target, and rate limits.

    Opposite means undoing: off after on, restore after shed, and raising a throttle level
    (or a power cap) soon after lowering it. Lowering power during a power event bypasses
    the dwell and the per-device rate: safety beats smoothness.
    """

    def __init__(self, min_dwell_s: float = 60.0, per_device_per_min: int = 6, per_site_per_min: int = 2000) -> None:
        self.min_dwell_s = min_dwell_s
        self.per_device_per_min = per_device_per_min
        self.per_site_per_min = per_site_per_min
        self._last: dict[str, tuple[ActionKind, float]] = {}
        self._level: dict[str, tuple[float, float]] = {}
        self._current: dict[str, float] = {}
        self._device_times: dict[str, deque[float]] = defaultdict(deque)
        self._site_times: deque[float] = deque()

    def check(self, action: Action, ctx: InterlockContext) -> str | None:
        """Refuse a flap or a rate-limit breach."""
        last = self._last.get(action.target_id)
        emergency = ctx.power_event and (action.kind in _DROPS_SERVICE or self._lowers(action))
        if last is not None and not emergency:
            kind, t_s = last
            if _OPPOSITE.get(kind) is action.kind and ctx.t_s - t_s < self.min_dwell_s:
                ago_s = ctx.t_s - t_s
                return f"flap: {kind} on {action.target_id} {ago_s:.0f} s ago (min dwell {self.min_dwell_s:.0f} s)"
        level = self._level.get(action.target_id)
        if level is not None and action.value is not None and action.kind in _LEVELS and not emergency:
            lowered_s, lowered_to = level
            if action.value > lowered_to and ctx.t_s - lowered_s < self.min_dwell_s:
                return (
                    f"flap: {action.target_id} lowered to {lowered_to:g} {ctx.t_s - lowered_s:.0f} s ago"
                    f" (min dwell {self.min_dwell_s:.0f} s before raising)"
                )
        times = self._device_times[action.target_id]
        while times and ctx.t_s - times[0] >= 60.0:
            times.popleft()
        if len(times) >= self.per_device_per_min and not emergency:
            return f"rate limit: {len(times)} actions on {action.target_id} in the last minute"
        while self._site_times and ctx.t_s - self._site_times[0] >= 60.0:
            self._site_times.popleft()
        if len(self._site_times) >= self.per_site_per_min:
            return f"rate limit: {len(self._site_times)} actions on the site in the last minute"
        return None

    def _lowers(self, action: Action) -> bool:
        if action.kind not in _LEVELS or action.value is None:
            return False
        current = self._current.get(action.target_id, float("inf"))
        previous = action.previous_value if action.previous_value is not None else current
        return action.value < previous

    def record(self, action: Action, ctx: InterlockContext) -> None:
        """Remember when the target was last acted on (and when its level was last lowered)."""
        if self._lowers(action) and action.value is not None:
            self._level[action.target_id] = (ctx.t_s, action.value)
        if action.kind in _LEVELS and action.value is not None:
            self._current[action.target_id] = action.value
        self._last[action.target_id] = (action.kind, ctx.t_s)
        self._device_times[action.target_id].append(ctx.t_s)
        self._site_times.append(ctx.t_s)


class DependencyOrderInterlock:
    """Keeps restores, sheds and outlet-offs in order.

    A restore waits until its dependencies run, a shed until its dependants are shed, and an
    outlet-off until the services of the server it darkens are shed (confirmed by a reading, not
    only sent: if a shed fails, its host keeps power).

    Policies order their sequences this way; this interlock keeps the order when something
    in between is refused, fails or is late (a flap dwell, a dead device).
    """

    def __init__(self, graph: SiteGraph) -> None:
        self.graph = graph

    @cached_property
    def _direct_dependants(self) -> dict[str, frozenset[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for s in self.graph.site.services:
            for d in s.depends_on:
                out[d].add(s.id)
        return {k: frozenset(v) for k, v in out.items()}

    @cached_property
    def _service_host_outlets(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """Service → its hosts → the outlets feeding each host."""
        out: dict[str, dict[str, tuple[str, ...]]] = defaultdict(dict)
        for w in self.graph.site.workloads:
            out[w.service][w.server] = tuple(path[1] for path in self.graph.power_path(w.server))
        return out

    @cached_property
    def _server_services(self) -> dict[str, frozenset[str]]:
        return server_services(self.graph)

    @cached_property
    def _server_outlets(self) -> dict[str, tuple[str, ...]]:
        return server_outlets(self.graph)

    def _check_outlet_off(self, action: Action, ctx: InterlockContext) -> str | None:
        if action.target_id not in self.graph.outlet_index:
            return None
        for i in self.graph.servers_below(action.target_id):
            server = self.graph.server_ids[i]
            if any(_feeds(o, action, ctx) for o in self._server_outlets.get(server, ())):
                continue  # another outlet still feeds it
            running = sorted(
                s
                for s in self._server_services.get(server, frozenset())
                if s not in ctx.services_down or s in ctx.shed_this_tick  # down, and confirmed so
            )
            if running:
                return (
                    f"held: {server} still runs {', '.join(running[:5])} (outlets go off after its services are shed)"
                )
        return None

    def check(self, action: Action, ctx: InterlockContext) -> str | None:
        """Refuse out-of-order restores, sheds and outlet-offs."""
        if action.kind is ActionKind.OUTLET_OFF:
            return self._check_outlet_off(action, ctx)
        if action.kind is ActionKind.SERVICE_RESTORE and action.target_id in self.graph.services:
            down = sorted(set(self.graph.services[action.target_id].depends_on) & ctx.services_down)
            if down:
                return f"held: dependency {', '.join(down)} still shed (restores go in dependency order)"
            rank = self.graph.services[action.target_id].tier.rank
            first = sorted(
                p
                for p in ctx.restores_planned & ctx.services_down
                if p in self.graph.services and self.graph.services[p].tier.rank < rank
            )
            if first:
                return f"held: higher-tier {', '.join(first[:5])} restore first (no priority inversion)"
            hosts = self._service_host_outlets.get(action.target_id, {})
            dark = sorted(h for h, outlets in hosts.items() if outlets and all(o in ctx.outlets_off for o in outlets))
            if dark:
                return f"held: host {', '.join(dark[:5])} still powered off (outlets go on before restores)"
        if action.kind is ActionKind.SERVICE_SHED:
            running = sorted(self._direct_dependants.get(action.target_id, frozenset()) - ctx.services_down)
            if running:
                return f"held: dependant {', '.join(running[:5])} still runs (sheds go in reverse dependency order)"
        return None

    def record(self, action: Action, ctx: InterlockContext) -> None:
        """Stateless: the shed set comes with the context."""
