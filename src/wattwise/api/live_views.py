"""Views of live controller state for :class:`~wattwise.api.live_backend.LiveBackend`.

Pure functions from the site model, the latest values, the planner's forecast and the store's
journal rows to API models; no I/O.
"""

from __future__ import annotations

import numpy as np

from wattwise.api.schemas import (
    ActionState,
    AtRisk,
    ForecastPoint,
    ForecastView,
    JournalEntry,
    PlannedAction,
    UpsState,
)
from wattwise.api.views import utc
from wattwise.api.whatif import LossOutcome
from wattwise.decide.base import SiteForecast
from wattwise.model.graph import ChainLoads, SiteGraph
from wattwise.model.site import Site
from wattwise.model.values import Action, Decision
from wattwise.store.base import JournalEntry as StoreEntry

Values = dict[tuple[str, str], tuple[float, float]]

RIPPLE_ALERT_V = 0.10
"""PSU output ripple that flags a PSU (a healthy unit shows ~0.04 V; it grows with degradation²)."""
PSU_TEMP_ALERT_C = 70.0
"""PSU internal temperature that flags a PSU."""
UPS_RUNTIME_ALERT_S = 900.0
"""A UPS on battery with less runtime than this is at risk of dropping its load."""
INLET_MARGIN_C = 3.0
"""A rack inlet within this margin of its limit (server max inlet or racklet trip) is at risk."""
RULES = "rule on latest readings"


def device_index(graph: SiteGraph) -> dict[str, tuple[str, str | None]]:
    """Device id → (kind, parent) for nodes, racklets, racks, servers and PSUs."""
    site = graph.site
    out: dict[str, tuple[str, str | None]] = {}
    for node, kind, parent in zip(graph.node_ids, graph.node_kind, graph.node_parent, strict=True):
        out[node] = (kind, graph.node_ids[int(parent)] if parent >= 0 else None)
    for rl in site.racklets:
        out[rl.id] = ("racklet", None)
    for r in site.racks:
        out[r.id] = ("rack", r.racklet)
    for s in site.servers:
        out[s.id] = ("server", s.rack)
        for p in s.psus:
            out[p.id] = ("psu", s.id)
    for rl in site.racklets:
        for p in rl.power.psus:
            out[p.id] = ("psu", rl.id)
    return out


def forecast_views(graph: SiteGraph, fc: SiteForecast, t_s: float, model: str) -> tuple[ForecastView, ...]:
    """The per-server forecast summed up the chain to every feed and UPS (point and upper bound)."""
    if fc.server_power_point_w is None:
        return ()
    point_w = fc.server_power_point_w
    upper_w = fc.server_power_upper_w if fc.server_power_upper_w is not None else point_w
    point = graph.chain_loads(graph.equal_share_psu_input_w(point_w))
    upper = graph.chain_loads(graph.equal_share_psu_input_w(upper_w))
    steps = 6
    out = []
    for i, (node, kind) in enumerate(zip(point.node_ids, point.node_kind, strict=True)):
        if kind not in ("feed", "ups"):
            continue
        mean, hi = float(point.load_w[i]), float(upper.load_w[i])
        points = tuple(
            ForecastPoint(t_s=t_s + fc.horizon_s * k / steps, mean=mean, lower=mean, upper=max(hi, mean))
            for k in range(1, steps + 1)
        )
        out.append(
            ForecastView(
                device_id=node,
                metric="power_w",
                model=model,
                interval_frac=0.0,  # a baseline bound, not a calibrated interval: no nominal coverage
                issued_t_s=t_s,
                capacity=float(point.capacity_w[i]),
                points=points,
            )
        )
    return tuple(out)


def _get(values: Values, dev: str, metric: str) -> float | None:
    hit = values.get((dev, metric))
    return hit[0] if hit is not None else None


def ups_views(site: Site, loads: ChainLoads, values: Values) -> tuple[UpsState, ...]:
    """Every UPS with its measured load and its reported battery state and runtime."""
    out = []
    for u in site.ups:
        load_w, cap_w = loads.of(u.id)
        on_battery = _get(values, u.id, "on_battery")
        out.append(
            UpsState(
                id=u.id,
                load_w=load_w,
                capacity_w=cap_w,
                on_battery=None if on_battery is None else on_battery >= 0.5,
                battery_charge_frac=_get(values, u.id, "battery_charge_frac"),
                battery_wh=u.battery_wh,
                state_of_health_frac=_get(values, u.id, "battery_health_frac") or u.state_of_health_frac,
                runtime_s=_get(values, u.id, "battery_runtime_s"),
                runtime_basis="telemetry: battery_runtime_s reported by the UPS",
            )
        )
    return tuple(out)


def _psu_risks(site: Site, values: Values) -> list[AtRisk]:
    out = []
    psus = [p.id for s in site.servers for p in s.psus] + [p.id for rl in site.racklets for p in rl.power.psus]
    for psu in psus:
        available, ripple_v, temp_c = (_get(values, psu, m) for m in ("available", "ripple_v", "temperature_c"))
        if available is not None and available < 0.5:
            out.append(AtRisk(device_id=psu, kind="psu", risk="failure", probability_frac=1.0, horizon_s=0.0,
                              reason="PSU reports unavailable", model=RULES))  # fmt: skip
        elif ripple_v is not None and ripple_v > RIPPLE_ALERT_V:
            prob = float(np.clip((ripple_v - 0.04) / 0.56, 0.05, 0.99))
            out.append(AtRisk(device_id=psu, kind="psu", risk="failure", probability_frac=prob, horizon_s=3600.0,
                              reason=f"output ripple {ripple_v:.2f} V (healthy ≈ 0.04 V)", model=RULES))  # fmt: skip
        elif temp_c is not None and temp_c > PSU_TEMP_ALERT_C:
            out.append(AtRisk(device_id=psu, kind="psu", risk="failure", probability_frac=0.3, horizon_s=3600.0,
                              reason=f"PSU at {temp_c:.0f} °C", model=RULES))  # fmt: skip
    return out


def _ups_risks(site: Site, values: Values) -> list[AtRisk]:
    out = []
    for u in site.ups:
        on_battery, runtime_s = _get(values, u.id, "on_battery"), _get(values, u.id, "battery_runtime_s")
        if on_battery is None or on_battery < 0.5 or runtime_s is None:
            continue
        prob = float(np.clip(1.0 - runtime_s / (4 * UPS_RUNTIME_ALERT_S), 0.05, 1.0))
        if runtime_s < UPS_RUNTIME_ALERT_S or prob > 0.5:
            out.append(AtRisk(device_id=u.id, kind="ups", risk="failure", probability_frac=prob, horizon_s=runtime_s,
                              reason=f"on battery, {runtime_s / 60:.0f} min left", model=RULES))  # fmt: skip
        else:
            out.append(AtRisk(device_id=u.id, kind="ups", risk="instability", probability_frac=prob,
                              horizon_s=runtime_s, reason=f"on battery, {runtime_s / 60:.0f} min left",
                              model=RULES))  # fmt: skip
    return out


def _cooling_risks(site: Site, values: Values) -> list[AtRisk]:
    out = []
    trip = {rl.id: rl.cooling.trip_inlet_c for rl in site.racklets}
    for rl in site.racklets:
        leak = _get(values, rl.id, "leak_detected")
        if leak is not None and leak >= 0.5:
            out.append(AtRisk(device_id=rl.id, kind="racklet", risk="failure", probability_frac=0.9, horizon_s=600.0,
                              reason="leak detected", model=RULES))  # fmt: skip
    limit_c = {s.rack: s.max_inlet_c for s in site.servers}
    for r in site.racks:
        inlet_c = _get(values, r.id, "inlet_temp_c")
        limit = trip.get(r.racklet or "", limit_c.get(r.id, 35.0))
        if inlet_c is not None and inlet_c >= limit - INLET_MARGIN_C:
            prob = float(np.clip(1.0 - (limit - inlet_c) / INLET_MARGIN_C, 0.1, 1.0))
            out.append(AtRisk(device_id=r.id, kind="rack", risk="overload", probability_frac=prob, horizon_s=600.0,
                              reason=f"inlet {inlet_c:.1f} °C, limit {limit:.0f} °C", model=RULES))  # fmt: skip
    return out


def at_risk(site: Site, values: Values) -> tuple[AtRisk, ...]:
    """Devices at risk from the latest readings, most likely first."""
    items = _psu_risks(site, values) + _ups_risks(site, values) + _cooling_risks(site, values)
    return tuple(sorted(items, key=lambda a: -a.probability_frac))


def planned_action(action: Action) -> PlannedAction:
    """An action waiting for an operator."""
    return PlannedAction(command_id=action.command_id, state=ActionState.PENDING, action=action)


def trim_decision(d: Decision, max_actions: int, t_s: float) -> Decision:
    """The decision (stamped ``t_s`` when it has no time) with at most ``max_actions`` actions."""
    if d.t_s == 0.0:
        d = d.model_copy(update={"t_s": t_s})
    if len(d.actions) <= max_actions:
        return d
    more = f"{len(d.actions) - max_actions} more actions not shown (see the journal)"
    return d.model_copy(update={"actions": d.actions[:max_actions], "reasons": (*d.reasons, more)})


def journal_view(e: StoreEntry, seq: int, roles: dict[str, str], plain: frozenset[str]) -> JournalEntry:
    """A store journal row as an API journal entry (rows of a ``plain`` decision id carry their own kind)."""
    operator = e.decision_id in plain
    detail = e.reason + (f" ({e.message})" if e.message else "")
    if not operator and e.value is not None:
        detail = f"value {e.value:g}: {detail}"
    return JournalEntry(
        seq=seq,
        t_s=e.t_s,
        at=utc(e.t_s),
        actor=e.actor or "controller",
        role=roles.get(e.actor, "controller"),
        kind=e.kind if operator else f"{e.phase} {e.kind}",
        target=e.target_id,
        detail=detail,
        command_id=None if operator else e.command_id,
    )


def what_if_summary(lost: tuple[str, ...], outcome: LossOutcome, over: list[str], decisions: list[Decision]) -> str:
    """One line: transfers, batteries, overloads, servers unpowered, and what wattwise would do."""
    parts = [f"lose {', '.join(lost)}:"]
    if outcome.ats_source:
        parts.append("ATS transfer " + ", ".join(f"{a}→{s}" for a, s in sorted(outcome.ats_source.items())) + ";")
    if outcome.ups_bridge_s:
        shortest = min(outcome.ups_bridge_s, key=lambda u: outcome.ups_bridge_s[u])
        bridge_min = outcome.ups_bridge_s[shortest] / 60
        parts.append(f"{len(outcome.ups_bridge_s)} UPS on battery, shortest {shortest} {bridge_min:.0f} min;")
    parts.append(f"{len(over)} overloaded" + (f" ({', '.join(over[:5])})" if over else "") + ";")
    parts.append(f"{outcome.servers_unpowered} servers unpowered;")
    if not decisions:
        parts.append("no policy decided")
        return " ".join(parts)
    said = []
    for d in decisions:
        why = f": {d.reasons[0]}" if d.reasons else ""
        said.append(f"{d.policy_name} {d.status.value}, {len(d.actions)} actions{why}")
    parts.append("wattwise would: " + "; ".join(said))
    return " ".join(parts)
