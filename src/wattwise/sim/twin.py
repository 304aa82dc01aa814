"""The digital twin: a whole site advanced in vectorized steps.

>>> from wattwise.model.generate import SiteSpec, generate_site
>>> twin = Twin(generate_site(SiteSpec(servers=40, servers_per_rack=10, racks_per_hall=2, seed=1)), seed=0)
>>> twin.step(1.0); twin.t_s
1.0
>>> 0 < twin.snapshot().it_power_w
True

Order of one step (``dt_s``): scheduled actions fall due → the AC chain is energised top-down
from the trip/transfer state → servers see their DC bus → workloads start/stop and migrate →
server power from utilisation → DC buses shared between PSUs → PSU input power and degradation
→ PDU phases, UPS (battery), ATS and feed loads bottom-up (``SiteGraph.chain_loads``) →
protection (breakers, feed mains, UPS overload) → thermal → event processors → accounting.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from wattwise.model.graph import SiteGraph
from wattwise.model.site import Site
from wattwise.model.values import Action, ActionResult, Reading
from wattwise.sim import chain, power, processors, thermal, work
from wattwise.sim.accounting import StepAccounting
from wattwise.sim.outcome import TIERS, Outcome, Tally, Timeline
from wattwise.sim.params import TwinParams
from wattwise.sim.snapshot import TwinSnapshot, take_snapshot
from wattwise.sim.state import all_, any_, build_chain, build_cooling, build_psus, build_servers, build_work, wsum
from wattwise.sim.traces import TraceCursor, smd_shapes, trace_bank

logger = logging.getLogger(__name__)


class Twin:
    """A simulated site that steps, reports readings and accepts actions.

    Args:
        site: The site to simulate.
        seed: Seed of every random draw (trace phases, heartbeat jitter).
        params: Physics constants.
        start_s: Simulated time at the start, s.
        record_timeline: Keep per-step series for plots.
    """

    def __init__(
        self,
        site: Site,
        seed: int = 0,
        params: TwinParams | None = None,
        start_s: float = 0.0,
        record_timeline: bool = True,
    ) -> None:
        self.site = site
        self.seed = seed
        self.params = params or TwinParams()
        self.graph = SiteGraph(site)
        self.t_s = start_s
        self.rng = np.random.default_rng(seed)
        g = self.graph
        self.rack_index = {r.id: i for i, r in enumerate(site.racks)}
        self.ids: dict[str, tuple[str, ...]] = {
            "feed": tuple(f.id for f in site.feeds),
            "ats": tuple(a.id for a in site.ats),
            "ups": tuple(u.id for u in site.ups),
            "pdu": tuple(p.id for p in site.pdus),
            "outlet": g.outlet_ids,
            "psu": g.psu_ids,
            "server": g.server_ids,
            "rack": tuple(r.id for r in site.racks),
            "racklet": tuple(r.id for r in site.racklets),
            "service": tuple(sv.id for sv in site.services),
            "workload": tuple(w.id for w in site.workloads),
            "processor": tuple(e.id for e in site.event_processors),
            "partition": tuple(p for e in site.event_processors for p in e.partitions),
        }
        self.index = {kind: {n: i for i, n in enumerate(ids)} for kind, ids in self.ids.items()}
        self.ix = chain.ChainIndex.of(g)
        self.srv = build_servers(site, g, self.rack_index)
        self.psu = build_psus(site, g)
        self.ch = build_chain(site, g)
        self.cool = build_cooling(site)
        self.work = build_work(site, g, seed)
        self.bank = trace_bank()
        self.wl_memory_gib = np.array([w.memory_gib for w in site.workloads], dtype=np.float64)
        self.cursor = TraceCursor(self.bank)
        self.shapes = smd_shapes()
        self.feed_capacity_w = np.array([f.capacity_w for f in site.feeds], dtype=np.float64)
        self.n_bus = len(g.bus_ids)
        self._psu_rack = self._psu_racks()
        self._outlet_slot = g.outlet_pdu * 3 + g.outlet_phase
        self.tally = Tally(n_phase=3 * len(site.pdus))
        self.timeline: Timeline | None = Timeline(tuple(f.id for f in site.feeds), tuple(u.id for u in site.ups))
        if not record_timeline:
            self.timeline = None
        self.pending: list[Action] = []
        self._ups_words: list[str] = []
        self._dirty = True
        self._booting = False
        self._restarting = False
        self._topo_key: tuple[bytes, int, int, int, int, int] | None = None
        self._share: np.ndarray | None = None
        self._all_up = False
        self._constrained = False
        self._migrating = False
        self.accounting = StepAccounting(self)
        self._has_bus = self.srv.bus >= 0
        self._every_bus = bool(self._has_bus.all())
        self._ats_key = b""
        self._ats_map: dict[str, str] = {}
        self._ups_key = b""
        self._readings_key: tuple[object, ...] | None = None
        self._readings: list[Reading] = []
        self._server_bus0 = np.maximum(self.srv.bus, 0)
        self._wl_scale = np.zeros(len(site.workloads))
        self._svc: tuple[np.ndarray, np.ndarray] = (np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
        self.events: list[tuple[float, str]] = []
        self.phase_trip_age_s = np.zeros((len(site.pdus), 3))
        self.feed_trip_age_s = np.zeros(len(site.feeds))
        self.it_power_w = 0.0
        self.loss_psu_w = 0.0
        self.loss_ups_w = 0.0
        self._settle()

    # ---- stepping ------------------------------------------------------------------------
    def _settle(self) -> None:
        """Run one zero-accounting step so readings at t=0 are consistent."""
        self._advance(1e-6, account=False)
        self.srv.boot_left_s[:] = 0.0
        self.work.wl_restart_left_s[:] = 0.0
        self.work.wl_running = self.work.wl_wanted & self.srv.powered[self.work.wl_server]
        self._booting = False
        self._dirty = True
        self._advance(1e-6, account=False)

    def step(self, dt_s: float | None = None) -> None:
        """Advance the site by ``dt_s`` seconds (default ``params.step_s``)."""
        dt = self.params.step_s if dt_s is None else dt_s
        if dt <= 0:
            raise ValueError(f"step must be positive, got {dt}")
        self.t_s += dt
        self._due_actions()
        self._advance(dt, account=True)

    def run_for(self, duration_s: float, dt_s: float | None = None) -> None:
        """Step repeatedly for ``duration_s`` seconds."""
        dt = self.params.step_s if dt_s is None else dt_s
        for _ in range(max(1, round(duration_s / dt))):
            self.step(dt)

    def mark_dirty(self) -> None:
        """Tell the twin that state outside its own step changed (actions, injections, tests).

        The step caches what only changes on events (which PSUs are live, which workloads run,
        sharing weights); counts of failed/latched units and the phase state are checked every
        step as well, so a missed call costs at most one stale step.
        """
        self._dirty = True
        self._readings_key = None

    def _topology_key(self) -> tuple[bytes, int, int, int, int, int]:
        srv, psu, ch = self.srv, self.psu, self.ch
        return (
            ch.phase_ok.tobytes(),
            int(np.count_nonzero(ch.outlet_on)),
            int(np.count_nonzero(psu.failed)),
            int(np.count_nonzero(psu.ocp_tripped)),
            int(np.count_nonzero(srv.thermal_tripped)),
            int(np.count_nonzero(srv.leak_tripped)),
        )

    def _power_servers(self, dt: float) -> bool:
        """Live PSUs, buses and servers (recomputed only when the topology changed); boot timers."""
        p, srv, psu, ch = self.params, self.srv, self.psu, self.ch
        key = self._topology_key()
        changed = self._dirty or key != self._topo_key
        if changed:
            outlet_ok = chain.outlets_live(ch, self._outlet_slot)
            bus_ok = power.bus_alive(psu, outlet_ok, self.n_bus)
            now = bus_ok[self._server_bus0] & self._has_bus & ~srv.thermal_tripped & ~srv.leak_tripped
            came_up = now & ~srv.powered
            srv.boot_left_s[came_up] = p.server_boot_s
            srv.first_step |= came_up
            srv.powered = now
            self._topo_key = key
            self._share = None
            self._all_up = all_(now)
        if self._booting:
            srv.boot_left_s = np.maximum(srv.boot_left_s - dt, 0.0)
        booting = any_(srv.boot_left_s)
        ended = self._booting and not booting
        self._booting = booting
        return changed or ended or booting

    def _workloads_step(self, dt: float, changed: bool) -> tuple[int, int, float, int]:
        """Running workloads, service status and migrations; returns (disrupted, done, GiB, aborted)."""
        ws, srv = self.work, self.srv
        disrupted = 0
        if changed or self._dirty or self._restarting:
            disrupted = work.update_running(ws, srv, dt, self.params)
            self._restarting = any_(ws.wl_restart_left_s)
            self._svc = work.service_status(ws)
            self._wl_scale = ws.wl_cpu_frac * ws.wl_surge * ws.svc_throttle_frac[ws.wl_service]
            self._constrained = bool(np.isfinite(srv.cap_w).any() or (srv.throttle_frac < 1.0).any())
        done, gib, aborted = (0, 0.0, 0)
        if self._migrating or self._dirty:
            done, gib, aborted = work.step_migrations(ws, srv, dt)
            self._migrating = any_(ws.wl_mig_dest >= 0)
        return disrupted, done, gib, aborted

    def _advance(self, dt: float, account: bool) -> None:
        p, srv, psu, ch, ws, g = self.params, self.srv, self.psu, self.ch, self.work, self.graph
        ups_dark, texts = chain.energize(ch, self.ix, dt, p)
        disrupted, done, gib, aborted = self._workloads_step(dt, self._power_servers(dt))
        ws.wl_demand_frac = self._wl_scale * self.cursor.norm_cpu(ws.wl_row, self.t_s + ws.wl_phase_s)
        fast = self._all_up and not (self._booting or self._constrained)
        power.server_power(srv, work.server_demand(ws, len(srv.powered), self._migrating), p, fast=fast)
        bus_w = wsum(self._server_bus0, srv.power_w if self._every_bus else srv.power_w * self._has_bus, self.n_bus)
        if self._share is None or self._dirty:
            self._share = power.bus_shares(psu, self.n_bus)
        psu.output_w = bus_w[psu.bus] * self._share
        ocp = power.psu_input(psu, dt, p)
        loads = g.chain_loads(psu.input_w, ats_source=self._ats_source())
        ch.phase_w = loads.phase_load_w
        chain.ups_step(ch, loads.load_w[self.ix.ups0 : self.ix.pdu0], ups_dark, dt, p)
        chain.upstream_loads(ch, self.ix, loads.load_w[self.ix.pdu0 :])
        new_phase, new_feed = chain.protect(ch, self.feed_capacity_w, dt, p)
        self._reset_breakers(dt)
        thermal_trips, leak_trips = thermal.thermal_step(self.cool, srv, dt, p)
        self._constrained |= bool(thermal_trips) or any_(srv.thermal_throttled)
        sla_s, ep_fail = processors.processors_step(ws, srv, self.shapes, self.t_s, dt, self.rng, p)
        # Placement changed by a finished migration: re-evaluate running workloads next step.
        self._dirty = bool(done or aborted)
        self.it_power_w = float(srv.power_w.sum())
        self.loss_psu_w = float((psu.input_w - psu.output_w).sum())
        self.loss_ups_w = float((ch.ups_input_w + ch.ups_battery_w - ch.ups_output_w - 0.9 * ch.ups_charge_w).sum())
        if not account:
            self._ups_words = self._ups_state()
            return
        n_failed = self._log_step(texts, new_phase, new_feed, thermal_trips, leak_trips, ocp)
        t = self.tally
        t.duration_s += dt
        t.breaker_trips += int(new_phase.sum())
        t.feed_trips += int(new_feed.sum())
        t.psu_ocp_trips += ocp
        t.psu_failures = n_failed
        t.thermal_trips += thermal_trips
        t.leak_trips += leak_trips
        t.disrupted_workloads += disrupted
        t.migrations += done
        t.migration_gib += gib
        t.migrations_aborted += aborted
        t.sla_violation_s += sla_s
        t.processor_failures += ep_fail
        self.accounting.account(dt, *self._svc)

    def _log_step(
        self,
        texts: list[str],
        new_phase: np.ndarray,
        new_feed: np.ndarray,
        thermal_trips: int,
        leak_trips: int,
        ocp: int,
    ) -> int:
        """Log this step's transitions; returns the number of failed PSUs."""
        self._ups_events()
        for text in texts:
            self._event(text)
        for i in np.flatnonzero(new_phase.ravel()):
            self._event(f"breaker {self._phase_name(int(i))} tripped")
        for i in np.flatnonzero(new_feed):
            self._event(f"feed {self.site.feeds[int(i)].id} main breaker tripped")
        if thermal_trips:
            self._event(f"{thermal_trips} server(s) tripped on inlet temperature")
        if leak_trips:
            self._event(f"{leak_trips} server(s) forced off by an un-isolated leak")
        if ocp:
            self._event(f"{ocp} PSU(s) latched off by over-current protection")
        n_failed = int(np.count_nonzero(self.psu.failed))
        if n_failed > self.tally.psu_failures:
            self._event(f"{n_failed - self.tally.psu_failures} PSU(s) failed")
        return n_failed

    # ---- helpers -------------------------------------------------------------------------
    def _psu_racks(self) -> np.ndarray:
        """Rack of each PSU (its server's rack, or the first rack its racklet cools); -1 if none."""
        rack_of_bus = np.full(self.n_bus, -1, dtype=np.int64)
        own = [i for i, s in enumerate(self.site.servers) if s.psus]
        rack_of_bus[: len(own)] = self.srv.rack[own]
        for k in range(len(self.site.racklets)):
            cooled = np.flatnonzero(self.cool.rack_racklet == k)
            if len(cooled):
                rack_of_bus[len(own) + k] = cooled[0]
        return np.asarray(rack_of_bus[self.psu.bus], dtype=np.int64)

    def _psu_inlet_c(self) -> np.ndarray:
        """Inlet temperature seen by each PSU (its rack's inlet; 25 °C without a rack)."""
        return np.where(self._psu_rack >= 0, self.cool.rack_inlet_c[np.maximum(self._psu_rack, 0)], 25.0)

    def psu_condition(self) -> tuple[np.ndarray, np.ndarray]:
        """Current (temperature °C, ripple V) of every PSU as its sensors read them.

        Computed on demand, not every step. The sensor noise is drawn from ``(seed, t_s)``, so
        it does not depend on how often anyone reads.
        """
        noise = np.random.default_rng([self.seed & 0xFFFFFFFF, int(round(self.t_s * 1000)) & 0xFFFFFFFFFFFF])
        temp, ripple = power.psu_condition(self.psu, self._psu_inlet_c(), noise)
        self.psu.temperature_c, self.psu.ripple_v = temp, ripple
        return temp, ripple

    def outlet_power_w(self) -> np.ndarray:
        """Power drawn at every outlet now, W (computed on demand)."""
        self.ch.outlet_w = wsum(self.psu.outlet, self.psu.input_w, len(self.ch.outlet_on))
        return self.ch.outlet_w

    def _ats_source(self) -> dict[str, str]:
        key = self.ch.ats_active.tobytes()
        if key != self._ats_key:
            ids = self.graph.node_ids
            self._ats_map = {a.id: ids[int(self.ch.ats_active[i])] for i, a in enumerate(self.site.ats)}
            self._ats_key = key
        return self._ats_map

    def _phase_name(self, flat: int) -> str:
        return f"{self.site.pdus[flat // 3].id}/L{flat % 3 + 1}"

    def phase_names(self) -> list[str]:
        """``pdu/L1``… names of every phase slot (3 per PDU)."""
        return [self._phase_name(i) for i in range(3 * len(self.site.pdus))]

    def _reset_breakers(self, dt: float) -> None:
        self.phase_trip_age_s = np.where(self.ch.phase_tripped, self.phase_trip_age_s + dt, 0.0)
        reset = self.phase_trip_age_s >= BREAKER_RESET_S
        if any_(reset):
            self.ch.phase_tripped &= ~reset
            self.ch.phase_heat[reset] = 0.0
            self._event(f"{int(reset.sum())} breaker(s) reset by technician")
        self.feed_trip_age_s = np.where(self.ch.feed_tripped, self.feed_trip_age_s + dt, 0.0)
        for f in np.flatnonzero(self.feed_trip_age_s >= BREAKER_RESET_S):
            self.ch.feed_tripped[f] = False
            self.ch.feed_heat[f] = 0.0
            self._event(f"feed {self.ids['feed'][f]} main breaker reset by technician")

    def _ups_state(self) -> list[str]:
        ch = self.ch
        full = np.maximum(ch.ups_battery_wh * ch.ups_soh_frac, 1e-9)
        low = ch.ups_energy_wh / full < ch.ups_low_frac
        return [
            "OFF" if off else ("OB" if ob else "OL") + (" LB" if lb else "") + (" BYPASS" if byp else "")
            for off, ob, lb, byp in zip(ch.ups_off, ch.ups_on_battery, low, ch.ups_bypass, strict=True)
        ]

    def _ups_events(self) -> None:
        """Log UPS status transitions (OL → OB → OB LB → OFF and back)."""
        ch = self.ch
        low = ch.ups_energy_wh < ch.ups_low_frac * ch.ups_battery_wh * ch.ups_soh_frac
        key = b"".join(a.tobytes() for a in (ch.ups_off, ch.ups_on_battery, low, ch.ups_bypass))
        if key == self._ups_key:
            return
        self._ups_key = key
        words = self._ups_state()
        for uid, old, new in zip(self.ids["ups"], self._ups_words, words, strict=True):
            if old != new:
                self._event(f"{uid} {old} -> {new}")
        self._ups_words = words

    def _event(self, text: str) -> None:
        self.events.append((self.t_s, text))
        if self.timeline is not None:
            self.timeline.events.append((self.t_s, text))
        logger.info("twin t=%.1f s: %s", self.t_s, text)

    def note(self, text: str) -> None:
        """Record an external event (scenario injection) in the event log; state may have changed."""
        self.mark_dirty()
        self._event(text)

    def _due_actions(self) -> None:
        if not self.pending:
            return
        due = [a for a in self.pending if a.not_before_s <= self.t_s]
        self.pending = [a for a in self.pending if a.not_before_s > self.t_s]
        for a in due:
            self.apply(a)

    # ---- interface for controllers -------------------------------------------------------
    def apply(self, action: Action) -> ActionResult:
        """Apply one action now (or schedule it for ``action.not_before_s``)."""
        from wattwise.sim.actions import apply_action

        result = apply_action(self, action)
        self._dirty = True
        if result.ok:
            self.tally.actions_ok += 1
        else:
            self.tally.actions_refused += 1
        return result

    def readings(self, t_s: float | None = None, kinds: Iterable[str] | None = None) -> list[Reading]:
        """Every current reading, or only those of device ``kinds``.

        Kinds: feed, ats, ups, pdu, outlet, psu, server, rack, racklet, processor, service.
        Repeated calls between two steps (and with no action in between) return the same list
        (a copy), so several readers of one step pay once.
        """
        from wattwise.sim.readings import collect_readings

        stamp = self.t_s if t_s is None else t_s
        key = (self.t_s, stamp, None if kinds is None else tuple(kinds), self.tally.actions_ok)
        if self._readings_key != key:
            self._readings = collect_readings(self, stamp, key[2])
            self._readings_key = key
        return list(self._readings)

    def snapshot(self) -> TwinSnapshot:
        """Frozen arrays of the state decision policies need."""
        return take_snapshot(self)

    def outcome(self) -> Outcome:
        """Frozen outcome of the run so far."""
        ch = self.ch
        return self.tally.freeze(self.phase_names(), float(ch.ups_energy_wh.sum()))

    def tier_names(self) -> tuple[str, ...]:
        """Tier names by rank."""
        return TIERS


BREAKER_RESET_S = 600.0
"""A tripped breaker is reset by a technician after this long (s)."""
