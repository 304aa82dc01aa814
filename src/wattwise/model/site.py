"""The site: a validated, frozen graph of power devices, racks, servers and services.

Power flows feed → (ATS) → (UPS) → PDU → outlet → PSU → server (or racklet power module →
DC bus → server). Services run as workloads on servers and depend on other services (a DAG).
Field-level physical ranges live here; cross-reference rules (dangling ids, cycles,
redundancy that the wiring cannot meet) live in :mod:`wattwise.model.rules` so that every
problem of a file is reported at once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")]
Frac = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveW = Annotated[float, Field(gt=0.0, le=1e9)]


class Frozen(BaseModel):
    """Base of every site-model class: frozen, unknown keys forbidden."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Tier(StrEnum):
    """Service priority tier; ``rank`` 0 is the most important."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for critical … 3 for low."""
        return _TIER_RANK[self]


_TIER_RANK = {Tier.CRITICAL: 0, Tier.HIGH: 1, Tier.MEDIUM: 2, Tier.LOW: 3}


class Redundancy(StrEnum):
    """How many independent units a load needs to stay powered."""

    N = "N"
    N_PLUS_1 = "N+1"
    TWO_N = "2N"


class Curve(Frozen):
    """A piecewise-linear curve y(load fraction), points sorted by load."""

    load_frac: tuple[Frac, ...] = Field(min_length=2)
    value: tuple[float, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _same_length_sorted(self) -> Curve:
        if len(self.load_frac) != len(self.value):
            raise ValueError("load_frac and value must have the same length")
        if any(b <= a for a, b in zip(self.load_frac, self.load_frac[1:], strict=False)):
            raise ValueError("load_frac must be strictly increasing")
        return self


class Feed(Frozen):
    """A utility or on-site source (side A/B)."""

    id: Id
    side: Literal["A", "B", "C"] = "A"
    source: Literal["grid", "generator", "solar", "battery"] = "grid"
    capacity_w: PositiveW
    voltage_v: Annotated[float, Field(gt=0, le=40_000)] = 400.0
    price_signal: str | None = None
    carbon_signal: str | None = None


class Ats(Frozen):
    """Automatic transfer switch choosing one of two sources."""

    id: Id
    sources: tuple[Id, Id]
    preferred_source: Id
    transfer_time_s: Annotated[float, Field(ge=0, le=60)] = 0.1
    capacity_w: PositiveW

    @model_validator(mode="after")
    def _preferred_is_a_source(self) -> Ats:
        if self.preferred_source not in self.sources:
            raise ValueError(f"preferred_source {self.preferred_source!r} is not one of sources {list(self.sources)}")
        return self


class Ups(Frozen):
    """Uninterruptible power supply with a battery string."""

    id: Id
    input: Id
    capacity_w: PositiveW
    capacity_va: PositiveW
    battery_wh: Annotated[float, Field(gt=0, le=1e8)]
    state_of_health_frac: Frac = 1.0
    efficiency: str = "ups_double_conversion"
    low_battery_frac: Frac = 0.2

    @model_validator(mode="after")
    def _va_covers_w(self) -> Ups:
        if self.capacity_va < self.capacity_w:
            raise ValueError(f"capacity_va {self.capacity_va} is below capacity_w {self.capacity_w}")
        return self


class Outlet(Frozen):
    """One PDU outlet."""

    id: Id
    phase: Annotated[int, Field(ge=1, le=3)] = 1
    switched: bool = True
    metered: bool = True


class Pdu(Frozen):
    """Power distribution unit with per-phase breakers and outlets."""

    id: Id
    input: Id
    phases: Literal[1, 3] = 1
    voltage_v: Annotated[float, Field(gt=0, le=1000)] = 230.0
    breaker_a: Annotated[float, Field(gt=0, le=4000)]
    outlets: tuple[Outlet, ...] = ()

    @property
    def phase_capacity_w(self) -> float:
        """Continuous capacity of one phase (80 % breaker derating, NEC/IEC practice)."""
        return 0.8 * self.breaker_a * self.voltage_v


class Psu(Frozen):
    """A power-supply unit feeding a DC bus from an outlet."""

    id: Id
    input: Id
    rating_w: PositiveW
    efficiency: str = "80plus_platinum"
    redundancy_group: str = "default"


class Server(Frozen):
    """A server with its PSUs (or fed from its racklet's DC bus when it has none)."""

    id: Id
    rack: Id
    idle_w: Annotated[float, Field(ge=0, le=1e5)]
    peak_w: Annotated[float, Field(gt=0, le=1e5)]
    power_curve_w: tuple[float, ...] | None = None
    psus: tuple[Psu, ...] = ()
    redundancy: Redundancy = Redundancy.N
    max_inlet_c: Annotated[float, Field(ge=10, le=80)] = 35.0
    model: str = ""

    @model_validator(mode="after")
    def _power_shape(self) -> Server:
        if self.idle_w > self.peak_w:
            raise ValueError(f"idle_w {self.idle_w} exceeds peak_w {self.peak_w}")
        if self.power_curve_w is not None and len(self.power_curve_w) != 11:
            raise ValueError("power_curve_w must have 11 points (0 %, 10 % … 100 % load)")
        return self


class RackletPower(Frozen):
    """Racklet power module: AC in, 48 V or 12 V DC out, built of rectifier PSUs."""

    ac_input: Literal["120V", "240V", "3ph"] = "240V"
    dc_out_v: Literal[12, 48] = 48
    base_capacity_w: PositiveW = 5000.0
    redundancy: Redundancy = Redundancy.N_PLUS_1
    psus: tuple[Psu, ...] = Field(min_length=1)


class RackletCooling(Frozen):
    """Racklet cooling module."""

    capacity_w: Annotated[float, Field(ge=1000, le=200_000)] = 30_000.0
    kind: Literal["air", "liquid"] = "liquid"
    fans: Annotated[int, Field(ge=0, le=64)] = 4
    pumps: Annotated[int, Field(ge=0, le=8)] = 2
    leak_sensors: Annotated[int, Field(ge=0, le=64)] = 2
    setpoint_inlet_c: Annotated[float, Field(ge=10, le=45)] = 24.0
    trip_inlet_c: Annotated[float, Field(ge=20, le=80)] = 40.0


class Racklet(Frozen):
    """A rack-level power and cooling unit feeding one or more racks."""

    id: Id
    power: RackletPower
    cooling: RackletCooling = RackletCooling()


class Rack(Frozen):
    """A rack; optionally fed and cooled by a racklet."""

    id: Id
    hall: str = "hall-1"
    racklet: Id | None = None
    cooling_capacity_w: Annotated[float, Field(gt=0, le=500_000)] = 20_000.0


class Service(Frozen):
    """A service: priority tier, dependencies, and how it can be throttled."""

    id: Id
    tier: Tier
    depends_on: tuple[Id, ...] = ()
    throttle_levels_frac: tuple[Frac, ...] = (1.0,)
    min_power_frac: Frac = 0.0
    restore_order: Annotated[int, Field(ge=0)] = 0
    flexible: bool = False

    @model_validator(mode="after")
    def _levels(self) -> Service:
        levels = self.throttle_levels_frac
        if not levels or levels[0] != 1.0 or any(b >= a for a, b in zip(levels, levels[1:], strict=False)):
            raise ValueError("throttle_levels_frac must start at 1.0 and strictly decrease")
        return self


class Workload(Frozen):
    """One instance of a service placed on a server."""

    id: Id
    service: Id
    server: Id
    cpu_frac: Frac = 0.5
    memory_gib: Annotated[float, Field(ge=0, le=1e5)] = 4.0
    state_gib: Annotated[float, Field(ge=0, le=1e5)] = 1.0
    migratable: bool = True
    trace: str | None = None


class EventProcessor(Frozen):
    """A stream/event processor owning partitions and sending heartbeats."""

    id: Id
    server: Id
    partitions: tuple[str, ...] = ()
    heartbeat_period_s: Annotated[float, Field(gt=0, le=600)] = 1.0
    sla_latency_s: Annotated[float, Field(gt=0, le=3600)] = 5.0


class RuntimeTargets(Frozen):
    """Battery runtime each tier must be granted during a power event."""

    critical_s: Annotated[float, Field(ge=0, le=86_400)] = 1800.0
    high_s: Annotated[float, Field(ge=0, le=86_400)] = 900.0
    medium_s: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    low_s: Annotated[float, Field(ge=0, le=86_400)] = 0.0

    def for_tier(self, tier: Tier) -> float:
        """Runtime target of a tier, seconds."""
        return float(getattr(self, f"{tier.value}_s"))


class Site(Frozen):
    """The whole site graph as loaded from one YAML file."""

    id: Id
    name: str = ""
    feeds: tuple[Feed, ...] = Field(min_length=1)
    ats: tuple[Ats, ...] = ()
    ups: tuple[Ups, ...] = ()
    pdus: tuple[Pdu, ...] = ()
    racklets: tuple[Racklet, ...] = ()
    racks: tuple[Rack, ...] = ()
    servers: tuple[Server, ...] = ()
    services: tuple[Service, ...] = ()
    workloads: tuple[Workload, ...] = ()
    event_processors: tuple[EventProcessor, ...] = ()
    runtime_targets: RuntimeTargets = RuntimeTargets()
