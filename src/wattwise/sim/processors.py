"""Event processors: heartbeats (CPU, memory, network), lag, partitions, injected instability.

Healthy processors beat every ``heartbeat_period_s`` and work off their partitions' event
rate with capacity ``processor_capacity_frac``; lag grows when load exceeds capacity and
shrinks otherwise. Injected instability follows the shape of a real SMD anomaly window
(cpu/mem/net, one SMD minute per 10 simulated seconds), scaled by ``severity``:

* ``jitter`` (mode 1): heartbeat gaps stretch randomly; capacity dips with the CPU shape.
* ``pause`` (mode 2): heartbeats stop for bursts (GC-pause-like) and no events are processed.
* ``gray`` (mode 3): beats keep coming but capacity degrades with the shape; at the end of the
  window the processor fails unless its partitions have been moved away.

A processor on a down server beats never and processes nothing. SLA violation time is counted
per partition-second whose owner's lag exceeds its ``sla_latency_s`` or whose owner is down.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from wattwise.sim.params import TwinParams
from wattwise.sim.state import ServerState, WorkState, any_, clip_

FloatArray = npt.NDArray[np.float64]
MODES = {"none": 0, "jitter": 1, "pause": 2, "gray": 3}
SMD_MINUTE_S = 10.0
NET_FULL_BPS = 1.25e8


def _shape_now(ws: WorkState, shapes: tuple[FloatArray, ...], t_s: float) -> FloatArray:
    """Current anomaly shape value per processor, columns cpu, mem, net, label; zeros when inactive."""
    out = np.zeros((len(ws.ep_mode), 4))
    active = (ws.ep_mode > 0) & (ws.ep_since_s <= t_s) & (t_s < ws.ep_until_s)
    for i in np.flatnonzero(active):
        s = shapes[int(ws.ep_shape[i]) % len(shapes)]
        k = int((t_s - ws.ep_since_s[i]) / SMD_MINUTE_S) % len(s)
        out[i] = s[k]
    return out


def processors_step(
    ws: WorkState,
    srv: ServerState,
    shapes: tuple[FloatArray, ...],
    t_s: float,
    dt_s: float,
    rng: np.random.Generator,
    p: TwinParams,
) -> tuple[float, int]:
    """Advance every processor; returns (SLA-violating partition-seconds, new failures)."""
    n = len(ws.ep_mode)
    if n == 0:
        return 0.0, 0
    host = srv.powered[ws.ep_server] & (srv.boot_left_s[ws.ep_server] <= 0)
    alive = host & ~ws.ep_failed
    load = np.bincount(ws.part_owner, weights=ws.part_rate, minlength=n)
    util = srv.util_frac[ws.ep_server]
    any_mode = any_(ws.ep_mode)
    if not any_mode:
        # Healthy fast path: no injected instability anywhere.
        capacity = np.where(alive, p.processor_capacity_frac, 0.0)
        period = ws.ep_period_s
        pausing = np.zeros(n, dtype=bool)
        sev = np.zeros(n)
        shape = np.zeros((n, 4))
    else:
        shape = _shape_now(ws, shapes, t_s)
        active = (ws.ep_mode > 0) & (ws.ep_since_s <= t_s) & (t_s < ws.ep_until_s)
        sev = np.where(active, ws.ep_severity, 0.0)
        pausing = active & (ws.ep_mode == 2) & ((t_s - ws.ep_since_s) % 60.0 < 60.0 * np.clip(sev, 0, 0.9))
        health = 1.0 - np.where(ws.ep_mode == 3, sev * (0.4 + 0.6 * shape[:, 0]), 0.3 * sev * shape[:, 0])
        capacity = np.where(alive & ~pausing, p.processor_capacity_frac * np.clip(health, 0.0, 1.0), 0.0)
        jitter = np.where((ws.ep_mode == 1) & active, sev * 4.0 * np.abs(rng.standard_normal(n)), 0.0)
        period = ws.ep_period_s * (1.0 + jitter)
    with np.errstate(divide="ignore"):
        drain = np.where(capacity > 0, 1.0 - capacity / np.maximum(load, 1e-12), 1.0)
    ws.ep_lag_s = np.where(load <= 0, 0.0, clip_(ws.ep_lag_s + dt_s * drain, 0.0, 1e6))
    beat = alive & ~pausing & (t_s - ws.ep_last_hb_s >= period)
    ws.ep_last_hb_s = np.where(beat, t_s, ws.ep_last_hb_s)
    ws.ep_gap_s = t_s - ws.ep_last_hb_s
    ws.ep_cpu_frac = np.where(alive, clip_(np.maximum(util, load) + 0.5 * sev * shape[:, 0], 0.0, 1.0), 0.0)
    ws.ep_mem_frac = np.where(alive, clip_(0.3 + 0.6 * np.maximum(sev * shape[:, 1], 0.0), 0.0, 1.0), 0.0)
    ws.ep_net_bps = np.where(alive, NET_FULL_BPS * clip_(load * (1 - 0.5 * sev) + 0.2 * shape[:, 2], 0.0, 1.0), 0.0)
    bad = (ws.ep_lag_s > ws.ep_sla_s) | ~alive
    violating = float(np.count_nonzero(bad[ws.part_owner])) * dt_s
    if not any_mode:
        return violating, 0
    ending = (ws.ep_mode == 3) & (ws.ep_until_s <= t_s) & (ws.ep_until_s > t_s - dt_s)
    owns = np.bincount(ws.part_owner, minlength=n) > 0
    new_fail = ending & owns & ~ws.ep_failed
    ws.ep_failed |= new_fail
    ws.ep_mode = np.where(ws.ep_until_s <= t_s, 0, ws.ep_mode)
    return violating, int(new_fail.sum())
