"""Outcome accounting of a twin run: what a benchmark compares between policies.

:class:`Outcome` is the frozen result; :class:`Tally` accumulates it step by step;
:class:`Timeline` records per-step series for plots.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
TIERS = ("critical", "high", "medium", "low")


@dataclass(frozen=True)
class Outcome:
    """Frozen summary of one run (all energies in J, times in s).

    Attributes:
        duration_s: Simulated time covered.
        availability_by_tier: Share of service-seconds each tier was up (dependency closure included).
        outage_s: Seconds of site-wide utility outage (every utility feed lost; generators aside).
        outage_availability_by_tier: ``availability_by_tier`` over the utility-outage seconds only
            (1.0 for every tier when the run had none).
        dependency_violation_s: Service-seconds a service ran while a dependency was down.
        priority_inversion_s: Seconds a lower tier ran fully while a higher tier was shed or throttled.
        overload_s_by_breaker: Seconds each PDU phase carried more than its derated capacity (``pdu/L1``).
        breaker_trips: Phase breakers that tripped.
        feed_overload_s: Seconds any feed carried more than its capacity.
        feed_trips: Feed main breakers that tripped.
        ups_overload_s: UPS-seconds above rated output.
        thermal_trips: Servers that tripped on inlet temperature.
        thermal_throttle_s: Server-seconds throttled by inlet temperature.
        leak_trips: Servers forced off by an un-isolated leak.
        psu_failures: PSUs that failed (degradation reached 1.0).
        psu_ocp_trips: PSUs latched off by over-current protection.
        energy_in_j: Energy drawn from feeds.
        energy_it_j: Energy used by servers.
        energy_loss_psu_j: Conversion loss in PSUs and rectifiers.
        energy_loss_ups_j: Conversion and charging loss in UPSs.
        battery_discharged_j: Energy delivered by batteries.
        battery_left_wh: Energy left in all batteries at the end.
        battery_min_charge_frac: Lowest state of charge of any UPS during the run.
        energy_cost: Feed energy × price signal (currency).
        carbon_g: Feed energy × carbon signal, gCO2.
        migrations: Completed migrations.
        migrations_aborted: Migrations aborted (a server went down).
        migration_gib: State moved by completed migrations.
        migration_energy_j: Extra energy of make-before-break copies.
        migration_s: Workload-seconds spent migrating (running on two servers).
        disrupted_workloads: Workloads stopped by power or thermal loss (not by an action).
        server_down_s: Server-seconds without power.
        sla_violation_s: Partition-seconds over the event processors' SLA.
        processor_failures: Event processors that failed.
        actions_ok: Actions the twin accepted.
        actions_refused: Actions the twin refused.
    """

    duration_s: float
    availability_by_tier: dict[str, float]
    outage_s: float
    outage_availability_by_tier: dict[str, float]
    dependency_violation_s: float
    priority_inversion_s: float
    overload_s_by_breaker: dict[str, float]
    breaker_trips: int
    feed_overload_s: float
    feed_trips: int
    ups_overload_s: float
    thermal_trips: int
    thermal_throttle_s: float
    leak_trips: int
    psu_failures: int
    psu_ocp_trips: int
    energy_in_j: float
    energy_it_j: float
    energy_loss_psu_j: float
    energy_loss_ups_j: float
    battery_discharged_j: float
    battery_left_wh: float
    battery_min_charge_frac: float
    energy_cost: float
    carbon_g: float
    migrations: int
    migrations_aborted: int
    migration_gib: float
    migration_energy_j: float
    migration_s: float
    disrupted_workloads: int
    server_down_s: float
    sla_violation_s: float
    processor_failures: int
    actions_ok: int
    actions_refused: int

    @property
    def critical_availability_frac(self) -> float:
        """Availability of the critical tier."""
        return self.availability_by_tier.get("critical", 1.0)

    @property
    def outage_critical_availability_frac(self) -> float:
        """Availability of the critical tier during site-wide utility outages."""
        return self.outage_availability_by_tier.get("critical", 1.0)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict."""
        out = asdict(self)
        out["critical_availability_frac"] = self.critical_availability_frac
        out["outage_critical_availability_frac"] = self.outage_critical_availability_frac
        return out


@dataclass
class Tally:
    """Mutable accumulator behind :class:`Outcome`."""

    n_phase: int
    tier_up_s: FloatArray = field(default_factory=lambda: np.zeros(4))
    tier_total_s: FloatArray = field(default_factory=lambda: np.zeros(4))
    outage_tier_up_s: FloatArray = field(default_factory=lambda: np.zeros(4))
    outage_tier_total_s: FloatArray = field(default_factory=lambda: np.zeros(4))
    phase_overload_s: FloatArray = field(default_factory=lambda: np.zeros(0))
    duration_s: float = 0.0
    outage_s: float = 0.0
    dependency_violation_s: float = 0.0
    priority_inversion_s: float = 0.0
    breaker_trips: int = 0
    feed_overload_s: float = 0.0
    feed_trips: int = 0
    ups_overload_s: float = 0.0
    thermal_trips: int = 0
    thermal_throttle_s: float = 0.0
    leak_trips: int = 0
    psu_failures: int = 0
    psu_ocp_trips: int = 0
    energy_in_j: float = 0.0
    energy_it_j: float = 0.0
    energy_loss_psu_j: float = 0.0
    energy_loss_ups_j: float = 0.0
    battery_discharged_j: float = 0.0
    battery_min_charge_frac: float = 1.0
    energy_cost: float = 0.0
    carbon_g: float = 0.0
    migrations: int = 0
    migrations_aborted: int = 0
    migration_gib: float = 0.0
    migration_energy_j: float = 0.0
    migration_s: float = 0.0
    disrupted_workloads: int = 0
    server_down_s: float = 0.0
    sla_violation_s: float = 0.0
    processor_failures: int = 0
    actions_ok: int = 0
    actions_refused: int = 0

    def __post_init__(self) -> None:
        if len(self.phase_overload_s) != self.n_phase:
            self.phase_overload_s = np.zeros(self.n_phase)

    def freeze(self, phase_names: list[str], battery_left_wh: float) -> Outcome:
        """The frozen :class:`Outcome` so far."""
        over = {n: round(float(s), 3) for n, s in zip(phase_names, self.phase_overload_s, strict=True) if s > 0}
        skip = {"n_phase", "tier_up_s", "tier_total_s", "outage_tier_up_s", "outage_tier_total_s", "phase_overload_s"}
        scalars = {k: v for k, v in asdict(self).items() if k not in skip}
        return Outcome(
            availability_by_tier=_shares(self.tier_up_s, self.tier_total_s),
            outage_availability_by_tier=_shares(self.outage_tier_up_s, self.outage_tier_total_s),
            overload_s_by_breaker=over,
            battery_left_wh=battery_left_wh,
            **scalars,
        )


def _shares(up_s: FloatArray, total_s: FloatArray) -> dict[str, float]:
    """Up-seconds over total seconds per tier (1.0 where a tier had no seconds)."""
    return {t: float(up_s[i] / total_s[i]) if total_s[i] > 0 else 1.0 for i, t in enumerate(TIERS)}


@dataclass
class Timeline:
    """Per-step series for plots (appended each step; converted with :meth:`arrays`)."""

    feed_ids: tuple[str, ...]
    ups_ids: tuple[str, ...]
    t_s: list[float] = field(default_factory=list)
    feed_load_w: list[FloatArray] = field(default_factory=list)
    ups_load_w: list[FloatArray] = field(default_factory=list)
    battery_charge_frac: list[FloatArray] = field(default_factory=list)
    inlet_max_c: list[float] = field(default_factory=list)
    inlet_mean_c: list[float] = field(default_factory=list)
    it_power_w: list[float] = field(default_factory=list)
    critical_up_frac: list[float] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)

    def arrays(self) -> dict[str, FloatArray]:
        """Series as arrays: 1-D per scalar, 2-D (steps, units) per feed/UPS quantity."""
        n_f, n_u = len(self.feed_ids), len(self.ups_ids)
        return {
            "t_s": np.array(self.t_s),
            "feed_load_w": np.array(self.feed_load_w).reshape(len(self.t_s), n_f),
            "ups_load_w": np.array(self.ups_load_w).reshape(len(self.t_s), n_u),
            "battery_charge_frac": np.array(self.battery_charge_frac).reshape(len(self.t_s), n_u),
            "inlet_max_c": np.array(self.inlet_max_c),
            "inlet_mean_c": np.array(self.inlet_mean_c),
            "it_power_w": np.array(self.it_power_w),
            "critical_up_frac": np.array(self.critical_up_frac),
        }
