"""The benchmark's suite: scenario variants, contestants (controller hooks) and one-run workers.

Used by ``bench/benchmark.py``; importable on its own (``sys.path`` holds ``bench/``).

Contestants are controller hooks on the twin: every ``POLL_S`` simulated seconds the twin's
arrays are copied into decide's frozen :class:`~wattwise.decide.base.PowerState` (the same
adapter as ``tests/decide/twin_adapter.py``), the contestant's policies decide, and their
actions go to ``twin.apply`` (which honours ``not_before_s``). The hook mechanism, poll period,
scenario and seed are identical for every contestant.
"""

from __future__ import annotations

import math
import re
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from wattwise.act.actuator import Verdict
from wattwise.act.base import Phase
from wattwise.control.assemble import efficiency_curves
from wattwise.control.loop import LatestValues
from wattwise.control.planner import PeakForecaster
from wattwise.control.processors import ProcessorWatch
from wattwise.decide.allocation import GreedyAllocationPolicy, MilpAllocationPolicy
from wattwise.decide.base import NO_FORECAST, EfficiencyCurves, PowerState, SiteForecast
from wattwise.decide.baselines import NutShutdownAllPolicy, ReactiveThresholdPolicy, SeedGreedyPolicy
from wattwise.decide.cooling import HeatFollowingCoolingPolicy
from wattwise.decide.event_shift import DisruptionShiftPolicy
from wattwise.decide.index import SiteIndex
from wattwise.decide.load_sharing import CurveLoadSharingPolicy
from wattwise.decide.migration import PredictiveMigrationPolicy
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.site import Site
from wattwise.model.values import Action, ActionKind, Decision
from wattwise.sim.outcome import Outcome
from wattwise.sim.runner import RunResult, build_twin, run_scenario
from wattwise.sim.scenario import CapacityOverride, Scenario, load_scenario, scenario_site
from wattwise.sim.twin import Twin

FloatArray = npt.NDArray[np.float64]
REPO = Path(__file__).resolve().parent.parent
POLL_S = 5.0
CONTESTANTS = ("wattwise", "nut_shutdown_all", "reactive_threshold", "seed_greedy", "no_migration")


# ----------------------------------------------------------------------------- twin → state


def server_ac_w(ix: SiteIndex, twin: Twin) -> FloatArray:
    """Servers' AC input power: DC power scaled by its bus's PSU input/output ratio."""
    dc = twin.srv.power_w
    ok = ix.server_bus >= 0
    bus_in = np.bincount(ix.psu_bus, weights=twin.psu.input_w, minlength=ix.n_bus)
    bus_dc = np.bincount(ix.server_bus[ok], weights=dc[ok], minlength=ix.n_bus)
    ratio = np.where(bus_dc > 0, bus_in / np.maximum(bus_dc, 1e-9), 1.0 / 0.94)
    out: FloatArray = np.where(ok, dc * ratio[np.maximum(ix.server_bus, 0)], dc)
    return out


def twin_power_state(ix: SiteIndex, twin: Twin, efficiency: EfficiencyCurves | None = None) -> PowerState:
    """A :class:`PowerState` of the twin now (copy of ``tests/decide/twin_adapter.py``)."""
    live = np.where(twin.work.wl_mig_dest >= 0, twin.work.wl_mig_dest, twin.work.wl_server)
    if not np.array_equal(live, ix.wl_server):  # placement as it is now (migrations in flight at their target)
        ix = replace(ix, wl_server=live.astype(np.int64))
    ch, psu, work, cool = twin.ch, twin.psu, twin.work, twin.cool
    bus_w = np.bincount(ix.psu_bus, weights=psu.output_w, minlength=ix.n_bus)
    share = np.where(bus_w[ix.psu_bus] > 0, psu.output_w / np.maximum(bus_w[ix.psu_bus], 1e-9), 0.0)
    full_wh = np.maximum(ch.ups_battery_wh * ch.ups_soh_frac, 1e-9)
    return PowerState(
        index=ix,
        t_s=twin.t_s,
        server_power_w=server_ac_w(ix, twin),
        feed_available=ch.feed_available,
        ats_source=ch.ats_active,
        ups_charge_frac=np.clip(ch.ups_energy_wh / full_wh, 0.0, 1.0),
        ups_on_battery=ch.ups_on_battery,
        service_level_frac=np.where(work.svc_shed, 0.0, work.svc_throttle_frac),
        service_running=work.svc_up.copy(),
        psu_available=~psu.failed & ~psu.ocp_tripped,
        psu_share_frac=share if bus_w.sum() > 0 else None,
        efficiency=efficiency,
        racklet_leak=cool.rl_leak,
        racklet_isolated=cool.rl_isolated,
        rack_inlet_c=cool.rack_inlet_c,
    )


def degradation_failure_prob(twin: Twin, horizon_s: float) -> FloatArray:
    """PSU failure probability from each unit's present degradation trend (stand-in predictor).

    A unit whose degradation, extrapolated at its present rate, reaches failure within the
    horizon gets probability 1, scaled down linearly beyond it. The twin's degradation rate is
    what a ripple/temperature trend model would estimate; here it is read directly (an
    idealised forecaster: the report says so).
    """
    psu = twin.psu
    left_s = np.where(
        psu.degrade_rate_per_s > 0,
        (1.0 - psu.degradation_frac) / np.maximum(psu.degrade_rate_per_s, 1e-12),
        np.inf,
    )
    out: FloatArray = np.clip(horizon_s / np.maximum(left_s, 1e-9), 0.0, 1.0)
    return out


# ----------------------------------------------------------------------------- contestants


@dataclass
class Hook:
    """A contestant as a twin controller hook; records decision latency (wall and CPU)."""

    name: str
    ix: SiteIndex
    curves: EfficiencyCurves
    latency_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    actions_sent: int = 0
    actions_refused: int = 0
    action_kinds: dict[str, int] = field(default_factory=dict)

    def decisions(self, twin: Twin, state: PowerState) -> list[Decision]:
        """The contestant's decisions for this poll."""
        raise NotImplementedError

    def acked(self, action: Action) -> None:
        """The twin accepted ``action`` (contestants that track ownership override this)."""

    def __call__(self, twin: Twin, t_s: float) -> None:
        """Read the twin, decide, act."""
        w0, c0 = time.perf_counter(), time.process_time()
        state = twin_power_state(self.ix, twin, self.curves)
        actions = [a for d in self.decisions(twin, state) for a in d.actions]
        self.latency_s.append(time.perf_counter() - w0)
        self.cpu_s.append(time.process_time() - c0)
        for a in actions:
            self.actions_sent += 1
            self.action_kinds[a.kind.value] = self.action_kinds.get(a.kind.value, 0) + 1
            if not twin.apply(a).ok:
                self.actions_refused += 1
            else:
                self.acked(a)


@dataclass
class SinglePolicyHook(Hook):
    """A baseline: one policy, no forecast."""

    policy: Any = None

    def decisions(self, twin: Twin, state: PowerState) -> list[Decision]:
        """The baseline's one decision."""
        return [self.policy.decide(state, NO_FORECAST)]


@dataclass
class WattwiseHook(Hook):
    """The wattwise policy set, in the planner's order, each at its own period (all on an event).

    allocation (every poll) → PSU load sharing (300 s) → predictive migration (30 s) →
    heat-following cooling (every poll), then event-processor shifting (every poll) exactly as
    the controller runs it: :class:`ProcessorWatch` (heartbeat detectors fitted on each
    processor's first 120 s of twin readings) feeds :class:`DisruptionShiftPolicy`. Forecast:
    the controller's own baseline (:class:`PeakForecaster`: recent peak + 5 %) plus PSU failure
    probabilities from the degradation trend. ``migrate=False`` is the no-migration ablation
    (migration policy off, migrations proposed by the cooling policy dropped).
    """

    milp: bool = False
    migrate: bool = True
    horizon_s: float = 900.0
    forecaster: PeakForecaster = field(default_factory=PeakForecaster)
    policies: list[tuple[Any, float]] = field(default_factory=list)
    last_run_s: dict[str, float] = field(default_factory=dict)
    last_event_key: tuple[int, ...] = ()
    site: Site | None = None
    processors: ProcessorWatch | None = None
    shift: DisruptionShiftPolicy = field(default_factory=DisruptionShiftPolicy)
    last_levels: FloatArray | None = None

    def __post_init__(self) -> None:
        if self.site is not None and self.site.event_processors:
            self.processors = ProcessorWatch(self.site, self.ix.server_ids)
        alloc: Any = MilpAllocationPolicy(time_limit_s=0.5) if self.milp else GreedyAllocationPolicy()
        self.policies = [
            (alloc, 0.0),
            (CurveLoadSharingPolicy(min_change_w=25.0), 300.0),
            (PredictiveMigrationPolicy(max_migrations=20), 30.0),
            (HeatFollowingCoolingPolicy(), 0.0),
        ]
        if not self.migrate:
            self.policies = [p for p in self.policies if not isinstance(p[0], PredictiveMigrationPolicy)]

    def decisions(self, twin: Twin, state: PowerState) -> list[Decision]:
        """Every due policy's decision on the same state and forecast.

        As the controller's planner does, a server's recent peaks start again once its
        services' levels changed (the twin's readings are current, so at once).
        """
        levels = np.asarray(state.service_level_frac)
        restart = None
        if self.last_levels is not None and len(self.last_levels) == len(levels):
            changed = np.abs(levels - self.last_levels) > 1e-9
            ix = state.index
            hit = changed[ix.wl_service].astype(np.float64)
            restart = np.bincount(ix.wl_server, weights=hit, minlength=len(ix.server_ids)) > 0
        self.last_levels = levels.copy()
        base = self.forecaster.observe(state.server_power_w, restart)
        fc = replace(base, horizon_s=self.horizon_s, psu_failure_prob=degradation_failure_prob(twin, self.horizon_s))
        assert state.ups_on_battery is not None
        assert state.feed_available is not None
        assert state.psu_available is not None
        assert state.racklet_leak is not None
        key = (
            int(state.ups_on_battery.sum()),
            int((~state.feed_available).sum()),
            int((~state.psu_available).sum()),
            int(state.racklet_leak.sum()),
            int((fc.psu_failure_prob is not None and (fc.psu_failure_prob >= 0.5).sum()) or 0),
        )
        event = key != self.last_event_key
        self.last_event_key = key
        out: list[Decision] = []
        for policy, period_s in self.policies:
            if not event and state.t_s - self.last_run_s.get(policy.name, -math.inf) < period_s:
                continue
            self.last_run_s[policy.name] = state.t_s
            d = policy.decide(state, fc)
            if not self.migrate:
                kept = tuple(a for a in d.actions if a.kind is not ActionKind.WORKLOAD_MIGRATE)
                d = d.model_copy(update={"actions": kept})
            out.append(d)
        if self.processors is not None:
            out.append(self._shift(twin, state.t_s))
        return out

    def _shift(self, twin: Twin, t_s: float) -> Decision:
        """Partition moves off processors the heartbeat detectors flag (the controller's path)."""
        assert self.processors is not None
        latest = LatestValues()
        for r in twin.readings(kinds=["processor"]):
            latest.values[(r.device_id, r.metric)] = (r.value, r.t_s)
        self.processors.observe(latest)
        pstate = self.processors.state(latest, t_s)
        return self.shift.decide(pstate, SiteForecast(processor_failure_prob=self.processors.failure_prob(t_s)))

    def acked(self, action: Action) -> None:
        """Acknowledged partition moves change owners."""
        if self.processors is not None and action.kind is ActionKind.PARTITION_MOVE:
            self.processors.observe_verdicts([Verdict(action, Phase.ACKED)])


def make_hook(name: str, twin: Twin, *, milp: bool = False) -> Hook:
    """A fresh contestant hook for ``twin``."""
    ix = SiteIndex.from_site(twin.site)
    curves = efficiency_curves(ix)
    if name == "wattwise":
        return WattwiseHook(name, ix, curves, milp=milp, site=twin.site)
    if name == "no_migration":
        return WattwiseHook(name, ix, curves, milp=milp, migrate=False, site=twin.site)
    policy: Any = {
        "nut_shutdown_all": NutShutdownAllPolicy,
        "reactive_threshold": ReactiveThresholdPolicy,
        "seed_greedy": SeedGreedyPolicy,
    }[name]()
    return SinglePolicyHook(name, ix, curves, policy=policy)


# ----------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Variant:
    """One scenario as run by the benchmark: file, site size, seed, shortened timeline.

    Attributes:
        key: Short id (``002``).
        title: What it stresses.
        file: Scenario file under ``scenarios/``.
        single_failure: Whether it is a single-failure (N+1) scenario for the goals.
        long_outage: Whether it is a long-outage scenario (critical availability vs shutdown-all).
        duration_s: Duration run (the file's may be longer; events after it are dropped).
        time_scale: Factor applied to every event's ``at_s`` and ``duration_s`` (1 = as written).
    """

    key: str
    title: str
    file: str
    single_failure: bool
    long_outage: bool
    duration_s: float
    time_scale: float = 1.0


SUITE = (
    Variant("000", "PSU degradation under load", "000-psu-degradation.yaml", True, False, 2400.0, 0.5),
    Variant("001", "surge → feed overload, price/carbon swing", "001-surge-feed-overload-price.yaml", True, False,
            2700.0, 0.5),
    Variant("002", "utility loss, UPS ride-through, ATS; long outage", "002-utility-loss-ups-ats.yaml", False, True,
            3300.0, 0.6),
    Variant("003", "cooling pump failure + racklet leak", "003-cooling-pump-leak.yaml", True, False, 1800.0, 0.5),
    Variant("004", "unstable event processors", "004-unstable-processors.yaml", True, False, 1800.0, 0.5),
    Variant("005", "compound (surge, degradation, both utilities, pump, processors)", "005-compound.yaml", False,
            True, 2400.0, 0.66),
)  # fmt: skip


def _scale_events(sc: Scenario, scale: float, duration_s: float) -> Scenario:
    """Scale event times (and durations, signals) by ``scale``; drop events past ``duration_s``."""
    events = []
    for ev in sc.events:
        upd: dict[str, object] = {"at_s": ev.at_s * scale}
        dur = getattr(ev, "duration_s", None)
        if dur is not None:
            upd["duration_s"] = dur * scale
        if upd["at_s"] < duration_s:  # type: ignore[operator]
            events.append(ev.model_copy(update=upd))
    sig = sc.signals.model_copy(
        update={
            "price_per_kwh": tuple((t * scale, v) for t, v in sc.signals.price_per_kwh),
            "carbon_g_per_kwh": tuple((t * scale, v) for t, v in sc.signals.carbon_g_per_kwh),
        }
    )
    return sc.model_copy(update={"events": tuple(events), "duration_s": duration_s, "signals": sig})


_HALL = re.compile(r"^ups-h(\d+)-(\w+)$")


def _resize(sc: Scenario, servers: int, site_seed: int, **spec: int) -> Scenario:
    """The scenario on a generated site of ``servers`` servers, capacities kept proportional.

    Site-wide resources (feed capacity, UPS capacity and battery energy) are scaled so that
    capacity per server equals the scenario's; per-device overrides (PDU breakers, racklet
    cooling) stay as written. A UPS override on ``ups-hK-X`` applies to every generated UPS of
    side ``X`` (hall parity kept). Events whose target the generated site lacks are dropped.
    """
    ref = scenario_site(sc)
    gen = {"servers": servers, "seed": site_seed, **spec}
    site = generate_site(SiteSpec(**gen))  # type: ignore[arg-type]
    k = servers / len(ref.servers)
    ov: dict[str, Any] = {}
    for dev_id, o in sc.overrides.items():
        m = _HALL.match(dev_id)
        if m:
            n_ref = sum(1 for u in ref.ups if u.id.endswith("-" + m.group(2)))
            targets = [u for u in site.ups if u.id.endswith("-" + m.group(2))]
            hall = int(m.group(1))
            for u in targets:
                uh = _HALL.match(u.id)
                if uh and (int(uh.group(1)) - 1) % 2 == (hall - 1) % 2:
                    per = k * n_ref / max(len(targets), 1)
                    upd = {
                        f: (v * per if f in ("battery_wh", "capacity_va", "capacity_w") else v)
                        for f, v in o.model_dump(exclude_none=True).items()
                    }
                    ov[u.id] = upd
        elif any(f.id == dev_id for f in site.feeds):
            ov[dev_id] = {f: (v * k if f == "capacity_w" else v) for f, v in o.model_dump(exclude_none=True).items()}
        else:
            ov[dev_id] = o.model_dump(exclude_none=True)
    known = {d.id for grp in ("feeds", "ats", "ups", "pdus", "racks", "racklets") for d in getattr(site, grp)}
    known |= {p.id for s in site.servers for p in s.psus} | {s.id for s in site.services}
    known |= {e.id for e in site.event_processors} | {
        r.id for rl in site.racklets for r in getattr(rl, "rectifiers", ())
    }
    ov = {i: CapacityOverride(**v) for i, v in ov.items() if i in known}
    events = tuple(ev for ev in sc.events if ev.target == "*" or ev.target in known or ev.target.startswith("rl-"))
    return sc.model_copy(
        update={"site": None, "generate": gen, "overrides": ov, "events": events, "source_file": sc.source_file}
    )


def _scale_batteries(sc: Scenario, scale: float) -> Scenario:
    """Every UPS's battery energy × ``scale``, so a compressed timeline keeps the written ride-through.

    Shortening an outage by ``scale`` while keeping the batteries would let them carry the full
    load for a larger share of it than the scenario says; with the energy scaled too, every UPS
    reaches the same state of charge at the same (scaled) moment as in the file.
    """
    if scale == 1.0:
        return sc
    ov = dict(sc.overrides)
    for u in scenario_site(sc).ups:
        old = ov.get(u.id) or CapacityOverride()
        ov[u.id] = old.model_copy(update={"battery_wh": (old.battery_wh or u.battery_wh) * scale})
    return sc.model_copy(update={"overrides": ov})


def variant_scenario(v: Variant, servers: int, seed: int, *, quick_spec: dict[str, int] | None = None) -> Scenario:
    """The scenario ``v`` at ``servers`` (2 000 = the example site as written) with ``seed``.

    Events are compressed by the variant's time scale and battery energy with them.
    """
    sc = load_scenario(REPO / "scenarios" / v.file)
    sc = _scale_batteries(_scale_events(sc, v.time_scale, v.duration_s), v.time_scale)
    if servers != 2000 or quick_spec:
        sc = _resize(sc, servers, site_seed=seed, **(quick_spec or {}))
    return sc.model_copy(update={"seed": seed, "name": f"{sc.name}@{servers}"})


# ----------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class Job:
    """One run: scenario variant × size × seed × contestant."""

    variant: Variant
    servers: int
    seed: int
    contestant: str
    full_controller: bool = False
    keep_timeline: bool = False
    quick_spec: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class JobResult:
    """What one run produced (picklable)."""

    job: Job
    outcome: Outcome
    wall_s: float
    latency_s: tuple[float, ...]
    cpu_s: tuple[float, ...]
    actions_sent: int
    actions_refused: int
    action_kinds: dict[str, int]
    timeline: dict[str, FloatArray] | None
    feed_ids: tuple[str, ...]
    ups_ids: tuple[str, ...]
    feed_capacity_w: tuple[float, ...]
    ups_capacity_w: tuple[float, ...]
    events: tuple[tuple[float, str], ...]


def _thin(tl: dict[str, FloatArray], every: int) -> dict[str, FloatArray]:
    return {k: v[::every] for k, v in tl.items()}


def run_job(job: Job) -> JobResult:
    """Run one job (module-level so a process pool can pickle it)."""
    sc = variant_scenario(job.variant, job.servers, job.seed, quick_spec=dict(job.quick_spec) or None)
    wall0 = time.perf_counter()
    latency: Sequence[float] = ()
    cpu: Sequence[float] = ()
    sent = refused = 0
    kinds: dict[str, int] = {}
    if job.full_controller:
        from wattwise.act.base import Mode
        from wattwise.control.twin_run import run_controlled

        run = run_controlled(sc, Mode.ARMED)
        res: RunResult = run.result
        twin_site = run.assembly.graph.site
    else:
        twin = build_twin(sc, record_timeline=job.keep_timeline)
        hook = make_hook(job.contestant, twin)
        res = run_scenario(sc, hook, hook_every_s=POLL_S, twin=twin)
        latency, cpu, sent, refused = hook.latency_s, hook.cpu_s, hook.actions_sent, hook.actions_refused
        kinds = dict(hook.action_kinds)
        twin_site = twin.site
    tl = _thin(res.timeline, 5) if (job.keep_timeline and res.timeline) else None
    return JobResult(
        job=job,
        outcome=res.outcome,
        wall_s=time.perf_counter() - wall0,
        latency_s=tuple(latency),
        cpu_s=tuple(cpu),
        actions_sent=sent,
        actions_refused=refused,
        action_kinds=kinds,
        timeline=tl,
        feed_ids=res.feed_ids,
        ups_ids=res.ups_ids,
        feed_capacity_w=tuple(f.capacity_w for f in twin_site.feeds),
        ups_capacity_w=tuple(u.capacity_w for u in twin_site.ups),
        events=res.events if job.keep_timeline else (),
    )


def decision_memory(servers: int, seed: int = 1) -> dict[str, float]:
    """Peak Python heap (tracemalloc) of one wattwise decision round, and of the index, MiB."""
    sc = (
        variant_scenario(SUITE[2], servers, seed)
        if servers == 2000
        else _resize(load_scenario(REPO / "scenarios" / SUITE[2].file), servers, seed)
    )
    twin = build_twin(sc, record_timeline=False)
    tracemalloc.start()
    hook = make_hook("wattwise", twin)
    _, idx_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    twin.ch.feed_available[:] = False  # a power event: every policy runs
    hook.decisions(twin, twin_power_state(hook.ix, twin, hook.curves))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"index_mib": idx_peak / 2**20, "decision_peak_mib": peak / 2**20}
