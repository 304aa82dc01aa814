"""Physical constants of the twin that a site file does not carry, with where each comes from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TwinParams:
    """Tunable physics of the twin (defaults are representative of real equipment).

    Attributes:
        step_s: Default step, s.
        server_boot_s: Time from power-on until workloads run again (POST + OS + services), s.
        inrush_factor: Power drawn on the first step after power-on, as a multiple of peak.
        psu_ocp_frac: A PSU shuts down (over-current protection) above this fraction of its rating.
        breaker_trip_k_s: Thermal breaker constant: trip when ∫((I/In)² − 1) dt reaches it (≈ 60 s at 2 In).
        breaker_pickup_frac: No thermal heating below this multiple of the rated current.
        breaker_magnetic_frac: Instant trip above this multiple of the rated current.
        feed_trip_k_s: Same as the breaker constant, for a feed's main breaker (against ``capacity_w``).
        ups_overload_k_s: UPS overload tolerance (≈ 60 s at 125 %), then bypass.
        peukert_exponent: Peukert exponent of the battery (VRLA lead-acid 1.1–1.3).
        ups_recharge_frac_per_h: Recharge power, fraction of battery energy per hour.
        ups_soh_loss_per_full_cycle_frac: State-of-health lost per full-depth discharge equivalent.
        ats_retransfer_s: Time the preferred source must be back before the ATS returns to it, s.
        generator_start_s: Time from start signal to a generator carrying load, s.
        thermal_tau_s: Time constant of a rack's inlet temperature, s.
        thermal_rise_c: Inlet rise above set-point when heat exceeds cooling by 100 % of capacity, °C.
        throttle_margin_c: Servers throttle at ``max_inlet_c`` and trip at ``max_inlet_c`` + this, °C.
        thermal_throttle_frac: Throughput kept by a thermally throttled server.
        leak_grace_s: A leak not isolated within this time forces its racklet's servers off, s.
        migration_bw_gib_per_s: Live-migration copy rate, GiB/s (≈ 10 Gb/s).
        migration_base_s: Fixed set-up and switch-over time of a migration, s.
        workload_restart_s: Time for a shed or stopped workload to be serving again, s.
        processor_capacity_frac: Event-processing capacity of a healthy processor, share of CPU.
    """

    step_s: float = 1.0
    server_boot_s: float = 60.0
    inrush_factor: float = 1.5
    psu_ocp_frac: float = 1.2
    breaker_trip_k_s: float = 180.0
    breaker_pickup_frac: float = 1.05
    breaker_magnetic_frac: float = 8.0
    feed_trip_k_s: float = 600.0
    ups_overload_k_s: float = 55.0
    peukert_exponent: float = 1.15
    ups_recharge_frac_per_h: float = 0.125
    ups_soh_loss_per_full_cycle_frac: float = 0.002
    ats_retransfer_s: float = 300.0
    generator_start_s: float = 12.0
    thermal_tau_s: float = 90.0
    thermal_rise_c: float = 40.0
    throttle_margin_c: float = 8.0
    thermal_throttle_frac: float = 0.6
    leak_grace_s: float = 120.0
    migration_bw_gib_per_s: float = 1.25
    migration_base_s: float = 5.0
    workload_restart_s: float = 10.0
    processor_capacity_frac: float = 0.8
