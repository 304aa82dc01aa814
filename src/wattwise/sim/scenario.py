"""Scenarios: a site, a seed, a trace selection, capacity overrides and a timeline of injected events.

A scenario is a YAML file validated by pydantic (unknown keys forbidden); errors name the file
and the field (``scenarios/002.yaml: events.1.duration_s: Input should be greater than 0``).
``site`` is a path relative to the scenario file, or ``generate`` builds one with
:func:`wattwise.model.generate.generate_site`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wattwise.errors import ConfigError
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.loader import load_site
from wattwise.model.site import Racklet, Site

NonNeg = Annotated[float, Field(ge=0.0)]
Pos = Annotated[float, Field(gt=0.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Event(_Strict):
    at_s: NonNeg
    target: str = Field(min_length=1)


class FeedLoss(_Event):
    """A utility feed goes dark (for ``duration_s``, or until a ``feed_return``)."""

    kind: Literal["feed_loss"]
    duration_s: Pos | None = None


class FeedReturn(_Event):
    """A lost feed comes back (and its tripped main is reset)."""

    kind: Literal["feed_return"]


class GeneratorFail(_Event):
    """A generator fails to start / stops."""

    kind: Literal["generator_fail"]


class PsuDegrade(_Event):
    """A PSU starts degrading at ``rate_per_s`` (of full degradation, at half load)."""

    kind: Literal["psu_degrade"]
    rate_per_s: Annotated[float, Field(gt=0.0, le=1.0)]


class PsuFail(_Event):
    """A PSU fails at once."""

    kind: Literal["psu_fail"]


class BatteryAge(_Event):
    """A UPS battery's state of health drops to ``state_of_health_frac``."""

    kind: Literal["battery_age"]
    state_of_health_frac: Annotated[float, Field(ge=0.0, le=1.0)]


class WorkloadSurge(_Event):
    """Demand of a service (or ``*``: all) multiplies by ``factor`` for ``duration_s``."""

    kind: Literal["workload_surge"]
    factor: Annotated[float, Field(gt=0.0, le=20.0)]
    duration_s: Pos | None = None


class CoolingFail(_Event):
    """``count`` pumps or fans of a racklet fail (until ``cooling_repair``)."""

    kind: Literal["pump_fail", "fan_fail"]
    count: Annotated[int, Field(ge=1, le=64)] = 1


class CoolingRepair(_Event):
    """Pumps, fans and leaks of a racklet are repaired."""

    kind: Literal["cooling_repair"]


class Leak(_Event):
    """A leak sensor of a racklet turns wet."""

    kind: Literal["leak"]


class ProcessorUnstable(_Event):
    """An event processor becomes unstable (shape of a real SMD anomaly)."""

    kind: Literal["processor_unstable"]
    mode: Literal["jitter", "pause", "gray"] = "gray"
    severity: Annotated[float, Field(gt=0.0, le=1.0)] = 0.6
    duration_s: Pos = 600.0
    shape: Annotated[int, Field(ge=0)] = 0


Event = Annotated[
    FeedLoss
    | FeedReturn
    | GeneratorFail
    | PsuDegrade
    | PsuFail
    | BatteryAge
    | WorkloadSurge
    | CoolingFail
    | CoolingRepair
    | Leak
    | ProcessorUnstable,
    Field(discriminator="kind"),
]


class CapacityOverride(_Strict):
    """New capacities for one device (only the given fields change)."""

    capacity_w: Pos | None = None
    capacity_va: Pos | None = None
    battery_wh: Pos | None = None
    state_of_health_frac: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    breaker_a: Pos | None = None
    cooling_capacity_w: Pos | None = None


class Signals(_Strict):
    """Piecewise-linear grid signals applied to every feed that names one: ``[[t_s, value], …]``."""

    price_per_kwh: tuple[tuple[NonNeg, float], ...] = ()
    carbon_g_per_kwh: tuple[tuple[NonNeg, NonNeg], ...] = ()


class Scenario(_Strict):
    """A runnable scenario."""

    name: str = Field(min_length=1)
    description: str = ""
    site: str | None = None
    generate: dict[str, int | str] | None = None
    seed: int = 0
    duration_s: Pos = 3600.0
    step_s: Annotated[float, Field(gt=0.0, le=60.0)] = 1.0
    start_s: NonNeg = 0.0
    traces: Literal["site", "planetlab", "google"] = "site"
    overrides: dict[str, CapacityOverride] = Field(default_factory=dict)
    signals: Signals = Signals()
    events: tuple[Event, ...] = ()
    source_file: str = ""

    @model_validator(mode="after")
    def _one_site(self) -> Scenario:
        if (self.site is None) == (self.generate is None):
            raise ValueError("give exactly one of 'site' (a path) or 'generate' (a SiteSpec)")
        return self


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(x) for x in loc if not (isinstance(x, str) and x in _KINDS)) or "<root>"


_KINDS = {
    "feed_loss",
    "feed_return",
    "generator_fail",
    "psu_degrade",
    "psu_fail",
    "battery_age",
    "workload_surge",
    "pump_fail",
    "fan_fail",
    "cooling_repair",
    "leak",
    "processor_unstable",
}


def parse_scenario(data: object, file: str = "<string>") -> Scenario:
    """Validate a scenario mapping; errors name the file and every bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: a scenario must be a mapping, got {type(data).__name__}")
    try:
        return Scenario.model_validate({**data, "source_file": file})
    except ValidationError as err:
        lines = [f"{file}: {_field(tuple(e['loc']))}: {e['msg']}" for e in err.errors()]
        raise ConfigError("\n".join(lines)) from err


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario YAML file."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read scenario: {err}") from err
    return parse_scenario(data, str(path))


def scenario_site(sc: Scenario) -> Site:
    """The scenario's site with its capacity overrides applied."""
    if sc.site is not None:
        base = Path(sc.source_file).parent if sc.source_file else Path.cwd()
        site = load_site((base / sc.site).resolve())
    else:
        gen = dict(sc.generate or {})
        unknown = sorted(set(gen) - set(SiteSpec.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"{sc.source_file or sc.name}: generate: unknown field(s) {unknown}")
        site = generate_site(SiteSpec(**gen))  # type: ignore[arg-type]
    return apply_overrides(site, sc)


def _override(dev: object, ov: CapacityOverride, where: str) -> object:
    """One device with the override's fields applied (racklets: cooling capacity)."""
    fields = ov.model_dump(exclude_none=True)
    if isinstance(dev, Racklet):
        if set(fields) != {"cooling_capacity_w"}:
            raise ConfigError(f"{where}: a racklet takes only cooling_capacity_w")
        cooling = dev.cooling.model_copy(update={"capacity_w": fields["cooling_capacity_w"]})
        return dev.model_copy(update={"cooling": cooling})
    model_fields = type(dev).model_fields  # type: ignore[attr-defined]
    bad = sorted(k for k in fields if k not in model_fields)
    if bad:
        raise ConfigError(f"{where}: {', '.join(bad)} does not apply to this device")
    return dev.model_copy(update=fields)  # type: ignore[attr-defined]


def apply_overrides(site: Site, sc: Scenario) -> Site:
    """Return ``site`` with the scenario's capacity overrides (unknown ids are an error)."""
    if not sc.overrides:
        return site
    left = dict(sc.overrides)
    groups: dict[str, object] = {}
    for group in ("feeds", "ats", "ups", "pdus", "racks", "racklets"):
        items = list(getattr(site, group))
        for i, dev in enumerate(items):
            ov = left.pop(dev.id, None)
            if ov is not None:
                items[i] = _override(dev, ov, f"{sc.source_file}: overrides.{dev.id}")
        groups[group] = tuple(items)
    if left:
        raise ConfigError(f"{sc.source_file}: overrides: unknown device id(s) {sorted(left)}")
    return site.model_copy(update=groups)
