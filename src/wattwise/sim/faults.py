"""Failure injection: apply a scenario event to a running twin.

Each injector validates its target against the twin's ids and raises
:class:`wattwise.errors.ConfigError` naming the event when it does not exist, so a bad scenario
fails before the run starts (see :func:`check_targets`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from wattwise.errors import ConfigError
from wattwise.sim.processors import MODES
from wattwise.sim.scenario import (
    BatteryAge,
    CoolingFail,
    CoolingRepair,
    Event,
    FeedLoss,
    FeedReturn,
    GeneratorFail,
    Leak,
    ProcessorUnstable,
    PsuDegrade,
    PsuFail,
    WorkloadSurge,
)

if TYPE_CHECKING:
    from wattwise.sim.twin import Twin

EndHook = Callable[["Twin"], None]

TARGET_KIND = {
    "feed_loss": "feed",
    "feed_return": "feed",
    "generator_fail": "feed",
    "psu_degrade": "psu",
    "psu_fail": "psu",
    "battery_age": "ups",
    "pump_fail": "racklet",
    "fan_fail": "racklet",
    "cooling_repair": "racklet",
    "leak": "racklet",
    "processor_unstable": "processor",
}


def check_targets(twin: Twin, events: tuple[Event, ...], file: str) -> None:
    """Raise ``ConfigError`` for the first event whose target the site does not have."""
    for i, ev in enumerate(events):
        if ev.kind == "workload_surge":
            if ev.target != "*" and ev.target not in twin.index["service"]:
                raise ConfigError(f"{file}: events.{i}.target: unknown service {ev.target!r} (or '*')")
            continue
        kind = TARGET_KIND[ev.kind]
        if ev.target not in twin.index[kind]:
            raise ConfigError(f"{file}: events.{i}.target: unknown {kind} {ev.target!r}")


def inject(twin: Twin, ev: Event) -> tuple[float, EndHook] | None:
    """Apply ``ev`` now; returns (end time, hook) when the event ends by itself."""
    twin.note(f"inject {ev.kind} {ev.target}")
    if isinstance(ev, FeedLoss | FeedReturn | GeneratorFail):
        return _feed(twin, ev)
    if isinstance(ev, PsuDegrade | PsuFail):
        i = twin.index["psu"][ev.target]
        if isinstance(ev, PsuFail):
            twin.psu.failed[i] = True
            twin.psu.degradation_frac[i] = 1.0
        else:
            twin.psu.degrade_rate_per_s[i] = ev.rate_per_s
        return None
    if isinstance(ev, BatteryAge):
        u = twin.index["ups"][ev.target]
        twin.ch.ups_soh_frac[u] = ev.state_of_health_frac
        twin.ch.ups_energy_wh[u] = min(twin.ch.ups_energy_wh[u], twin.ch.ups_battery_wh[u] * ev.state_of_health_frac)
        return None
    if isinstance(ev, WorkloadSurge):
        return _surge(twin, ev)
    if isinstance(ev, CoolingFail | CoolingRepair | Leak):
        _cooling(twin, ev)
        return None
    _processor(twin, ev)
    return None


def _feed(twin: Twin, ev: FeedLoss | FeedReturn | GeneratorFail) -> tuple[float, EndHook] | None:
    f = twin.index["feed"][ev.target]
    ch = twin.ch
    if isinstance(ev, GeneratorFail):
        ch.gen_failed[f] = True
        ch.gen_running[f] = False
        return None
    if isinstance(ev, FeedReturn):
        ch.feed_available[f] = True
        ch.feed_tripped[f] = False
        ch.feed_heat[f] = 0.0
        return None
    ch.feed_available[f] = False
    if ev.duration_s is None:
        return None

    def back(t: Twin) -> None:
        t.ch.feed_available[f] = True
        t.ch.feed_tripped[f] = False
        t.note(f"feed {ev.target} returns")

    return ev.at_s + ev.duration_s, back


def _surge(twin: Twin, ev: WorkloadSurge) -> tuple[float, EndHook] | None:
    ws = twin.work
    mask = np.ones(len(ws.wl_surge), dtype=bool)
    if ev.target != "*":
        mask = ws.wl_service == twin.index["service"][ev.target]
    ws.wl_surge[mask] *= ev.factor
    if ev.duration_s is None:
        return None

    def end(t: Twin) -> None:
        t.work.wl_surge[mask] /= ev.factor
        t.note(f"surge on {ev.target} ends")

    return ev.at_s + ev.duration_s, end


def _cooling(twin: Twin, ev: CoolingFail | CoolingRepair | Leak) -> None:
    r = twin.index["racklet"][ev.target]
    c = twin.cool
    if isinstance(ev, Leak):
        c.rl_leak[r] = True
    elif isinstance(ev, CoolingRepair):
        c.rl_pumps_failed[r] = 0
        c.rl_fans_failed[r] = 0
        c.rl_leak[r] = False
        c.rl_leak_s[r] = 0.0
        c.rl_isolated[r] = False
    elif ev.kind == "pump_fail":
        c.rl_pumps_failed[r] = min(int(c.rl_pumps[r]), int(c.rl_pumps_failed[r]) + ev.count)
    else:
        c.rl_fans_failed[r] = min(int(c.rl_fans[r]), int(c.rl_fans_failed[r]) + ev.count)


def _processor(twin: Twin, ev: ProcessorUnstable) -> None:
    e = twin.index["processor"][ev.target]
    ws = twin.work
    ws.ep_mode[e] = MODES[ev.mode]
    ws.ep_severity[e] = ev.severity
    ws.ep_shape[e] = ev.shape
    ws.ep_since_s[e] = twin.t_s
    ws.ep_until_s[e] = twin.t_s + ev.duration_s
