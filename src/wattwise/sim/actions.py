"""Actions the twin accepts, each checked like a real device or orchestrator would.

Targets by kind (``Action.target_id``; ``value`` in SI; ``dest_id`` where a destination is needed):

=================== ==================== ==============================================
kind                target               value / dest
=================== ==================== ==============================================
outlet_off/on/cycle outlet id            cycle: off now, on after 5 s; on resets OCP
psu_setpoint        PSU id               W of output share (0 = hot standby)
power_cap           server id            W (>= idle); None removes the cap
throttle            server or service id fraction; a service takes one of its levels
service_shed        service id           stops all its workloads
service_restore     service id           starts them again (restart delay); value: level
workload_migrate    workload id          dest_id = server id (powered, not cordoned)
workload_stop/start workload id          -
workload_defer      workload id          stops it until workload_start
partition_move      partition id         dest_id = event-processor id
cooling_setpoint    racklet or rack id   deg C (10-45); dest_id='fan_speed': 0.2-1.0
cooling_isolate     racklet id           1/None isolates the liquid loop, 0 re-opens it
ats_transfer        ATS id               dest_id = one of its sources
node_cordon/drain   server id            drain: migrate (or re-place) its workloads
node_resume         server id            uncordon
=================== ==================== ==============================================

An action with ``not_before_s`` in the future is queued and applied when due. Invalid actions
return ``ok=False`` with the reason; nothing is changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from wattwise.errors import ActuationRefused as Refused
from wattwise.model.values import Action, ActionKind, ActionResult

if TYPE_CHECKING:
    from wattwise.sim.twin import Twin

OUTLET_CYCLE_OFF_S = 5.0


def _idx(twin: Twin, kind: str, target: str | None) -> int:
    if target is None or target not in twin.index[kind]:
        raise Refused(f"unknown {kind} {target!r}")
    return twin.index[kind][target]


def _value(a: Action, lo: float, hi: float, what: str) -> float:
    if a.value is None or not math.isfinite(a.value) or not lo <= a.value <= hi:
        raise Refused(f"{what} must be within [{lo}, {hi}], got {a.value}")
    return float(a.value)


def _outlet(twin: Twin, a: Action) -> str:
    i = _idx(twin, "outlet", a.target_id)
    pdu = twin.site.pdus[int(twin.graph.outlet_pdu[i])]
    if not next(o.switched for o in pdu.outlets if o.id == a.target_id):
        raise Refused(f"outlet {a.target_id} is not switched")
    if a.kind is ActionKind.OUTLET_ON:
        twin.ch.outlet_on[i] = True
        twin.psu.ocp_tripped[twin.psu.outlet == i] = False
    else:
        twin.ch.outlet_on[i] = False
    if a.kind is ActionKind.OUTLET_CYCLE:
        again = Action(kind=ActionKind.OUTLET_ON, target_id=a.target_id, reason=f"cycle {a.command_id}")
        twin.pending.append(again.model_copy(update={"not_before_s": twin.t_s + OUTLET_CYCLE_OFF_S}))
    return f"outlet {a.target_id} {'on' if twin.ch.outlet_on[i] else 'off'}"


def _psu_setpoint(twin: Twin, a: Action) -> str:
    i = _idx(twin, "psu", a.target_id)
    v = _value(a, 0.0, float(twin.psu.rating_w[i]), "PSU set-point W")
    twin.psu.setpoint_w[i] = v
    twin.psu.weight_w[i] = v
    return f"{a.target_id} set-point {v:.0f} W" + (" (hot standby)" if v == 0 else "")


def _power_cap(twin: Twin, a: Action) -> str:
    i = _idx(twin, "server", a.target_id)
    if a.value is None:
        twin.srv.cap_w[i] = np.inf
        return f"{a.target_id} cap removed"
    v = _value(a, float(twin.srv.curve_w[i, 0]), 1e5, f"power cap of {a.target_id} (≥ idle)")
    twin.srv.cap_w[i] = v
    return f"{a.target_id} capped at {v:.0f} W"


def _throttle(twin: Twin, a: Action) -> str:
    v = _value(a, 0.0, 1.0, "throttle level")
    if a.target_id in twin.index["server"]:
        twin.srv.throttle_frac[twin.index["server"][a.target_id]] = v
        return f"server {a.target_id} throttled to {v:.2f}"
    k = _idx(twin, "service", a.target_id)
    levels = twin.site.services[k].throttle_levels_frac
    if not any(abs(v - lv) < 1e-6 for lv in levels):
        raise Refused(f"service {a.target_id} has throttle levels {list(levels)}, not {v}")
    twin.work.svc_throttle_frac[k] = v
    return f"service {a.target_id} throttled to {v:.2f}"


def _service(twin: Twin, a: Action) -> str:
    k = _idx(twin, "service", a.target_id)
    shed = a.kind is ActionKind.SERVICE_SHED
    if not shed and a.value is not None and a.value > 0:  # restored at the planned level
        levels = twin.site.services[k].throttle_levels_frac
        if any(abs(a.value - lv) < 1e-6 for lv in levels):
            twin.work.svc_throttle_frac[k] = a.value
    twin.work.svc_shed[k] = shed
    return f"service {a.target_id} {'shed' if shed else 'restored'}"


def _migrate(twin: Twin, a: Action) -> str:
    w = _idx(twin, "workload", a.target_id)
    d = _idx(twin, "server", a.dest_id)
    ws, srv, p = twin.work, twin.srv, twin.params
    if not ws.wl_migratable[w]:
        raise Refused(f"workload {a.target_id} is not migratable")
    if ws.wl_mig_dest[w] >= 0:
        raise Refused(f"workload {a.target_id} is already migrating")
    if d == ws.wl_server[w]:
        raise Refused(f"workload {a.target_id} already runs on {a.dest_id}")
    if not srv.powered[d] or srv.cordoned[d]:
        raise Refused(f"server {a.dest_id} is {'cordoned' if srv.cordoned[d] else 'down'}")
    if not ws.wl_running[w]:
        ws.wl_server[w] = d  # a stopped workload is simply re-placed
        return f"workload {a.target_id} re-placed on {a.dest_id}"
    ws.wl_mig_dest[w] = d
    ws.wl_mig_left_s[w] = p.migration_base_s + ws.wl_state_gib[w] / p.migration_bw_gib_per_s
    return f"workload {a.target_id} migrating to {a.dest_id} ({ws.wl_mig_left_s[w]:.0f} s)"


def _workload(twin: Twin, a: Action) -> str:
    w = _idx(twin, "workload", a.target_id)
    start = a.kind is ActionKind.WORKLOAD_START
    twin.work.wl_wanted[w] = start
    if not start:
        twin.work.wl_mig_dest[w] = -1
    return f"workload {a.target_id} {'started' if start else 'stopped'}"


def _partition(twin: Twin, a: Action) -> str:
    k = _idx(twin, "partition", a.target_id)
    e = _idx(twin, "processor", a.dest_id)
    ws = twin.work
    if ws.ep_failed[e] or not twin.srv.powered[ws.ep_server[e]]:
        raise Refused(f"processor {a.dest_id} is down")
    ws.part_owner[k] = e
    ws.ep_lag_s[e] += 2.0  # rebalance pause on the new owner
    return f"partition {a.target_id} moved to {a.dest_id}"


def _cooling(twin: Twin, a: Action) -> str:
    c = twin.cool
    if a.kind is ActionKind.COOLING_ISOLATE:
        r = _idx(twin, "racklet", a.target_id)
        iso = a.value is None or a.value >= 0.5
        c.rl_isolated[r] = iso
        return f"racklet {a.target_id} loop {'isolated' if iso else 're-opened'}"
    if a.dest_id == "fan_speed":
        r = _idx(twin, "racklet", a.target_id)
        v = _value(a, 0.2, 1.0, "fan/pump speed set-point (fraction of full speed)")
        c.rl_speed_frac[r] = v
        return f"racklet {a.target_id} fans/pumps at {v:.0%}"
    v = _value(a, 10.0, 45.0, "cooling set-point °C")
    if a.target_id in twin.index["racklet"]:
        c.rack_setpoint_c[c.rack_racklet == twin.index["racklet"][a.target_id]] = v
    else:
        c.rack_setpoint_c[_idx(twin, "rack", a.target_id)] = v
    return f"{a.target_id} set-point {v:.1f} °C"


def _ats(twin: Twin, a: Action) -> str:
    k = _idx(twin, "ats", a.target_id)
    sources = twin.site.ats[k].sources
    if a.dest_id not in sources:
        raise Refused(f"ATS {a.target_id} sources are {list(sources)}, not {a.dest_id!r}")
    node = twin.graph.node_index[a.dest_id]
    if not twin.ch.node_ok[node]:
        raise Refused(f"source {a.dest_id} is not available")
    twin.ch.ats_requested[k] = node
    return f"ATS {a.target_id} transfer to {a.dest_id} requested"


def _least_loaded(twin: Twin, exclude: int) -> int:
    srv = twin.srv
    ok = srv.powered & ~srv.cordoned & (srv.boot_left_s <= 0)
    ok[exclude] = False
    if not ok.any():
        return -1
    return int(np.flatnonzero(ok)[np.argmin(srv.util_frac[ok])])


def _node(twin: Twin, a: Action) -> str:
    i = _idx(twin, "server", a.target_id)
    srv, ws = twin.srv, twin.work
    if a.kind is ActionKind.NODE_RESUME:
        srv.cordoned[i] = False
        return f"{a.target_id} resumed"
    srv.cordoned[i] = True
    if a.kind is ActionKind.NODE_CORDON:
        return f"{a.target_id} cordoned"
    moved = stopped = 0
    for w in np.flatnonzero((ws.wl_server == i) & ws.wl_wanted & (ws.wl_mig_dest < 0)):
        dest = _least_loaded(twin, i)
        if ws.wl_migratable[w] and dest >= 0 and ws.wl_running[w]:
            ws.wl_mig_dest[w] = dest
            ws.wl_mig_left_s[w] = twin.params.migration_base_s + ws.wl_state_gib[w] / twin.params.migration_bw_gib_per_s
            srv.util_frac[dest] += ws.wl_demand_frac[w]  # so the next pick spreads the load
            moved += 1
        elif dest >= 0:
            ws.wl_server[w] = dest
            stopped += 1
    return f"{a.target_id} draining: {moved} migrating, {stopped} restarted elsewhere"


HANDLERS: dict[ActionKind, Callable[[Twin, Action], str]] = {
    ActionKind.OUTLET_OFF: _outlet,
    ActionKind.OUTLET_ON: _outlet,
    ActionKind.OUTLET_CYCLE: _outlet,
    ActionKind.PSU_SETPOINT: _psu_setpoint,
    ActionKind.POWER_CAP: _power_cap,
    ActionKind.THROTTLE: _throttle,
    ActionKind.SERVICE_SHED: _service,
    ActionKind.SERVICE_RESTORE: _service,
    ActionKind.WORKLOAD_MIGRATE: _migrate,
    ActionKind.WORKLOAD_STOP: _workload,
    ActionKind.WORKLOAD_START: _workload,
    ActionKind.WORKLOAD_DEFER: _workload,
    ActionKind.PARTITION_MOVE: _partition,
    ActionKind.COOLING_SETPOINT: _cooling,
    ActionKind.COOLING_ISOLATE: _cooling,
    ActionKind.ATS_TRANSFER: _ats,
    ActionKind.NODE_CORDON: _node,
    ActionKind.NODE_DRAIN: _node,
    ActionKind.NODE_RESUME: _node,
}


def apply_action(twin: Twin, action: Action) -> ActionResult:
    """Validate and apply one action to the twin."""
    if action.not_before_s > twin.t_s:
        twin.pending.append(action)
        return ActionResult(command_id=action.command_id, ok=True, message="scheduled", t_s=twin.t_s)
    handler = HANDLERS.get(action.kind)
    if handler is None:
        return ActionResult(command_id=action.command_id, ok=False, message=f"unsupported {action.kind}", t_s=twin.t_s)
    try:
        message = handler(twin, action)
    except Refused as err:
        return ActionResult(command_id=action.command_id, ok=False, message=err.reason, t_s=twin.t_s)
    return ActionResult(command_id=action.command_id, ok=True, message=message, t_s=twin.t_s)
