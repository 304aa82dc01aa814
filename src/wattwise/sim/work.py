"""Workloads and services: trace-driven demand, restart, migration, shedding, service status.

A workload's CPU demand on its server is ``cpu_frac × trace(t) / mean(trace)`` (so its long-run
mean is its ``cpu_frac``), capped at 3× its mean, times any injected surge and its service's
throttle level. A workload runs when it is wanted, its service is not shed, and its server is
powered and booted; it serves again ``workload_restart_s`` after those hold. Migration is
make-before-break: for ``migration_base_s + state_gib / migration_bw_gib_per_s`` the workload
runs on both servers (plus 10 % copy overhead at the source), then moves; concurrent migrations
out of one server share its bandwidth, so n of them take n times as long.

Service mapping: shedding a service stops every workload of that service; restoring starts
them again (with restart delay, and inrush on servers that were off). A service is *up* when
it is not shed, has at least one workload, every workload of it runs, and every service in its
dependency closure is up.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wattwise.sim.params import TwinParams
from wattwise.sim.state import ServerState, WorkState, wsum
from wattwise.sim.traces import TraceCursor

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
MIGRATION_COPY_OVERHEAD_FRAC = 0.1


def demand(ws: WorkState, cursor: TraceCursor, t_s: float) -> None:
    """Update each workload's CPU demand (share of its server) from its trace."""
    norm = cursor.norm_cpu(ws.wl_row, t_s + ws.wl_phase_s)
    ws.wl_demand_frac = ws.wl_cpu_frac * norm * ws.wl_surge * ws.svc_throttle_frac[ws.wl_service]


def server_demand(ws: WorkState, n_servers: int, migrating: bool = True) -> FloatArray:
    """Total CPU demand on each server: running workloads plus migration copies (when ``migrating``)."""
    run_w = ws.wl_demand_frac * ws.wl_running
    total = wsum(ws.wl_server, run_w, n_servers)
    if not migrating:
        return total
    mig = ws.wl_mig_dest >= 0
    if mig.any():
        total += np.bincount(ws.wl_mig_dest[mig], weights=run_w[mig], minlength=n_servers)
        total += np.bincount(ws.wl_server[mig], weights=MIGRATION_COPY_OVERHEAD_FRAC * run_w[mig], minlength=n_servers)
    return total


def update_running(ws: WorkState, srv: ServerState, dt_s: float, p: TwinParams) -> int:
    """Start and stop workloads from host and service state; returns unplanned disruptions."""
    host_up = srv.powered[ws.wl_server] & (srv.boot_left_s[ws.wl_server] <= 0)
    allowed = ws.wl_wanted & ~ws.svc_shed[ws.wl_service]
    should = allowed & host_up
    ws.wl_restart_left_s = np.where(should, np.maximum(ws.wl_restart_left_s - dt_s, 0.0), p.workload_restart_s)
    prev = ws.wl_running
    ws.wl_running = should & (ws.wl_restart_left_s <= 0)
    return int((prev & ~host_up & allowed).sum())


def step_migrations(ws: WorkState, srv: ServerState, dt_s: float) -> tuple[int, float, int]:
    """Advance live migrations; returns (completed, GiB moved, aborted)."""
    mig = ws.wl_mig_dest >= 0
    if not mig.any():
        return 0, 0.0, 0
    dest = np.maximum(ws.wl_mig_dest, 0)
    abort = mig & (~srv.powered[dest] | ~ws.wl_running)
    ws.wl_mig_dest[abort] = -1
    mig &= ~abort
    # Concurrent migrations out of one server share its NIC: each progresses at 1/n of full speed.
    sharing = np.bincount(ws.wl_server[mig], minlength=len(srv.powered))[ws.wl_server]
    ws.wl_mig_left_s = np.where(mig, ws.wl_mig_left_s - dt_s / np.maximum(sharing, 1), ws.wl_mig_left_s)
    done = mig & (ws.wl_mig_left_s <= 0)
    ws.wl_server = np.where(done, ws.wl_mig_dest, ws.wl_server)
    ws.wl_mig_dest[done] = -1
    return int(done.sum()), float(ws.wl_state_gib[done].sum()), int(abort.sum())


def service_status(ws: WorkState) -> tuple[BoolArray, BoolArray]:
    """(up, own_ok): own_ok = all own workloads run and not shed; up adds the dependency closure."""
    n = len(ws.svc_tier)
    not_running = np.bincount(ws.wl_service, weights=(~ws.wl_running).astype(np.float64), minlength=n)
    count = np.bincount(ws.wl_service, minlength=n)
    own_ok = (not_running == 0) & (count > 0) & ~ws.svc_shed
    up = own_ok.copy()
    if len(ws.dep_src):
        for _ in range(n):
            bad = np.bincount(ws.dep_src, weights=(~up[ws.dep_dst]).astype(np.float64), minlength=n) > 0
            new = up & ~bad
            if (new == up).all():
                break
            up = new
    ws.svc_up = up
    return up, own_ok


def priority_inversion(ws: WorkState, up: BoolArray) -> bool:
    """True when a lower-tier service runs fully while a higher-tier one is shed or throttled."""
    degraded = ws.svc_shed | (ws.svc_throttle_frac < 1.0)
    if not degraded.any():
        return False
    full_on = up & ~degraded
    if not full_on.any():
        return False
    return bool(ws.svc_tier[full_on].max() > ws.svc_tier[degraded].min())
