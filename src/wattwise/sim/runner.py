"""Run a scenario on the twin, with an optional controller in the loop.

>>> from wattwise.sim.scenario import parse_scenario
>>> sc = parse_scenario({"name": "tiny", "generate": {"servers": 40, "servers_per_rack": 10,
...     "racks_per_hall": 2}, "duration_s": 30, "events": [
...     {"at_s": 10, "kind": "feed_loss", "target": "utility-a", "duration_s": 10}]})
>>> run_scenario(sc).outcome.availability_by_tier["critical"]
1.0
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from wattwise.sim.faults import EndHook, check_targets, inject
from wattwise.sim.outcome import Outcome
from wattwise.sim.params import TwinParams
from wattwise.sim.scenario import Scenario, Signals, scenario_site
from wattwise.sim.twin import Twin

logger = logging.getLogger(__name__)

ControllerHook = Callable[[Twin, float], None]
ProgressHook = Callable[[float, float], None]


@dataclass(frozen=True)
class RunResult:
    """What a scenario run produced.

    Attributes:
        scenario: Scenario name.
        seed: Seed used.
        outcome: The frozen outcome.
        timeline: Per-step series (``t_s``, ``feed_load_w``, ``ups_load_w``, ``battery_charge_frac``,
            ``inlet_max_c``, ``inlet_mean_c``, ``it_power_w``, ``critical_up_frac``).
        events: (t_s, text) of every event in the run.
        feed_ids: Column order of ``feed_load_w``.
        ups_ids: Column order of ``ups_load_w`` and ``battery_charge_frac``.
        wall_s: Wall-clock seconds the run took.
    """

    scenario: str
    seed: int
    outcome: Outcome
    timeline: dict[str, npt.NDArray[np.float64]]
    events: tuple[tuple[float, str], ...]
    feed_ids: tuple[str, ...]
    ups_ids: tuple[str, ...]
    wall_s: float


def build_twin(sc: Scenario, params: TwinParams | None = None, record_timeline: bool = True) -> Twin:
    """A twin for the scenario's site, seed, traces and start time (targets checked)."""
    base = params or TwinParams()
    if base.step_s != sc.step_s:
        base = TwinParams(**{**base.__dict__, "step_s": sc.step_s})
    twin = Twin(scenario_site(sc), seed=sc.seed, params=base, start_s=sc.start_s, record_timeline=record_timeline)
    check_targets(twin, sc.events, sc.source_file or sc.name)
    if sc.traces != "site":
        bank = twin.bank
        n = len(twin.work.wl_row)
        rng = np.random.default_rng(sc.seed)
        if sc.traces == "planetlab":
            twin.work.wl_row = rng.integers(0, bank.n_planetlab, n).astype(np.int64)
        else:
            twin.work.wl_row = rng.integers(bank.n_planetlab, len(bank.cpu_frac), n).astype(np.int64)
    _signals(twin, sc.signals)
    return twin


def _interp(points: tuple[tuple[float, float], ...], t_s: float, default: float) -> float:
    if not points:
        return default
    xs, ys = zip(*points, strict=True)
    return float(np.interp(t_s, xs, ys))


def _signals(twin: Twin, sig: Signals) -> None:
    """Set price and carbon of every feed that carries a signal at the twin's time."""
    has_price = np.array([f.price_signal is not None for f in twin.site.feeds])
    has_carbon = np.array([f.carbon_signal is not None for f in twin.site.feeds])
    if sig.price_per_kwh:
        twin.ch.price_per_kwh[has_price] = _interp(sig.price_per_kwh, twin.t_s, 0.12)
    if sig.carbon_g_per_kwh:
        twin.ch.carbon_g_per_kwh[has_carbon] = _interp(sig.carbon_g_per_kwh, twin.t_s, 300.0)


def run_scenario(
    scenario: Scenario,
    controller_hook: ControllerHook | None = None,
    *,
    hook_every_s: float = 1.0,
    params: TwinParams | None = None,
    progress: ProgressHook | None = None,
    twin: Twin | None = None,
) -> RunResult:
    """Run ``scenario`` to its end.

    Args:
        scenario: The scenario.
        controller_hook: Called as ``hook(twin, t_s)`` every ``hook_every_s`` (before the step),
            so a policy can read ``twin.snapshot()``/``twin.readings()`` and ``twin.apply(...)``.
        hook_every_s: Hook period, s.
        params: Physics constants (``step_s`` comes from the scenario).
        progress: Called as ``progress(done_s, total_s)`` about 100 times per run.
        twin: A twin already built by :func:`build_twin` (to inspect it afterwards).

    Returns:
        The outcome, timeline and events.
    """
    wall0 = time.perf_counter()
    tw = twin or build_twin(scenario, params)
    start, dt = tw.t_s, scenario.step_s
    queue: list[tuple[float, int, object]] = [(start + ev.at_s, i, ev) for i, ev in enumerate(scenario.events)]
    heapq.heapify(queue)
    seq = len(queue)
    n_steps = max(1, round(scenario.duration_s / dt))
    next_hook = start
    every = max(1, n_steps // 100)
    for k in range(n_steps):
        while queue and queue[0][0] <= tw.t_s + 1e-9:
            _, _, item = heapq.heappop(queue)
            if callable(item):
                item(tw)
                tw.mark_dirty()
                continue
            ended = inject(tw, item)  # type: ignore[arg-type]
            if ended is not None:
                heapq.heappush(queue, (start + ended[0], seq, ended[1]))
                seq += 1
        if scenario.signals.price_per_kwh or scenario.signals.carbon_g_per_kwh:
            _signals(tw, scenario.signals)
        if controller_hook is not None and tw.t_s + 1e-9 >= next_hook:
            controller_hook(tw, tw.t_s)
            next_hook += hook_every_s
        tw.step(dt)
        if progress is not None and (k % every == 0 or k == n_steps - 1):
            progress((k + 1) * dt, n_steps * dt)
    tl = tw.timeline.arrays() if tw.timeline is not None else {}
    return RunResult(
        scenario=scenario.name,
        seed=scenario.seed,
        outcome=tw.outcome(),
        timeline=tl,
        events=tuple(tw.events),
        feed_ids=tw.ids["feed"],
        ups_ids=tw.ids["ups"],
        wall_s=time.perf_counter() - wall0,
    )


__all__ = ["ControllerHook", "EndHook", "RunResult", "build_twin", "run_scenario"]
