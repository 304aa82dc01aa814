"""The policy contract and the frozen values policies take: site state and forecasts.

Every policy is pure: ``decide(state, forecast) -> Decision``; no I/O, no clock, no globals.

How the state gets filled (all arrays are in :class:`~wattwise.decide.index.SiteIndex` order):

* **The controller** keeps the latest reading per ``(device_id, metric)`` and calls
  :meth:`PowerState.from_readings`, which maps site-model ids to rows: servers' ``power_w``,
  feeds' ``source_available``, ATS ``ats_source_index``, UPS ``battery_charge_frac`` and
  ``on_battery``, services' ``throttle_frac`` (0 when shed), PSUs' ``available`` and
  ``output_power_w``, the ``outlet_on`` of the outlet feeding each PSU; racklets'
  ``cooling_capacity_w`` and ``leak_detected``; racks' ``inlet_temp_c``. Missing readings
  fall back to safe defaults (server at peak power, feed available, ATS on its preferred
  source, battery full, service at full level, outlet on).
* **The twin** already holds the same quantities as arrays in site order and builds
  ``PowerState(index=..., server_power_w=..., ...)`` directly, without any id lookup
  (``tests/decide/twin_adapter.py`` is the reference adapter: it converts the twin's server
  DC power to AC input with the bus's PSU input/output ratio, and reports a PSU behind a
  switched-off outlet as available, since that is a choice, not a fault).

Forecasts come from ``predict/`` but a policy accepts any :class:`SiteForecast`: a point
value and an upper bound per server (W), failure probabilities per PSU / server / racklet
module, optionally per upstream node; planners use the upper bound.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from wattwise.decide.index import SiteIndex
from wattwise.model.values import Decision

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

StateT_contra = TypeVar("StateT_contra", contravariant=True)


def _ro(a: Any, dtype: type = np.float64) -> npt.NDArray[Any]:
    out: npt.NDArray[Any] = np.array(a, dtype=dtype, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class SiteForecast:
    """What is expected over the next ``horizon_s``; every field optional.

    Attributes:
        horizon_s: How far ahead the forecast looks, s.
        server_power_point_w: Point forecast of each server's peak power in the horizon, W.
        server_power_upper_w: Upper bound of the same, W (planners size against this).
        psu_failure_prob: Probability that each PSU fails within the horizon.
        server_failure_prob: Probability that each server (node) fails within the horizon.
        racklet_power_failure_prob: Same, per racklet power module.
        racklet_cooling_failure_prob: Same, per racklet cooling module.
        node_load_upper_w: Upper bound per upstream node (feeds, ATS, UPS, PDUs), W, when a
            forecaster predicts at that level; NaN where none.
        price_per_kwh: Energy price per future hour slot (slot 0 = now).
        carbon_g_per_kwh: Grid carbon intensity per future hour slot.
        slot_s: Length of one price/carbon slot, s.
        processor_failure_prob: Predicted failure probability (PFP) per event processor.
    """

    horizon_s: float = 900.0
    server_power_point_w: FloatArray | None = None
    server_power_upper_w: FloatArray | None = None
    psu_failure_prob: FloatArray | None = None
    server_failure_prob: FloatArray | None = None
    racklet_power_failure_prob: FloatArray | None = None
    racklet_cooling_failure_prob: FloatArray | None = None
    node_load_upper_w: FloatArray | None = None
    price_per_kwh: FloatArray | None = None
    carbon_g_per_kwh: FloatArray | None = None
    slot_s: float = 3600.0
    processor_failure_prob: FloatArray | None = None

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if isinstance(value, np.ndarray):
                object.__setattr__(self, name, _ro(value))


NO_FORECAST = SiteForecast()


@dataclass(frozen=True, eq=False)
class EfficiencyCurves:
    """PSU efficiency curves as arrays, one row per curve name (``SiteIndex.curve_names``).

    Attributes:
        load_frac: (n_curve, n_point) load points, fraction of rating, increasing.
        efficiency_frac: (n_curve, n_point) efficiency (output/input) at those points.
    """

    load_frac: FloatArray
    efficiency_frac: FloatArray

    def __post_init__(self) -> None:
        object.__setattr__(self, "load_frac", _ro(np.atleast_2d(self.load_frac)))
        object.__setattr__(self, "efficiency_frac", _ro(np.atleast_2d(self.efficiency_frac)))

    def efficiency(self, curve: IntArray, load_frac: FloatArray) -> FloatArray:
        """Efficiency of PSUs on curves ``curve`` at ``load_frac`` (clamped interpolation)."""
        out = np.empty(len(load_frac), dtype=np.float64)
        for c in np.unique(curve):
            m = curve == c
            out[m] = np.interp(load_frac[m], self.load_frac[c], self.efficiency_frac[c])
        return out

    def input_w(self, curve: IntArray, rating_w: FloatArray, output_w: FloatArray) -> FloatArray:
        """AC input power of PSUs delivering ``output_w`` (0 in, 0 out), W."""
        eff = self.efficiency(curve, output_w / rating_w)
        return np.where(output_w > 0, output_w / np.maximum(eff, 1e-3), 0.0)


@dataclass(frozen=True, eq=False)
class PowerState:
    """Live power state of a site, arrays in :class:`SiteIndex` order.

    Attributes:
        index: The site's topology.
        t_s: Time of the state (sim or wall clock, seconds).
        server_power_w: AC input power per server (sum of its PSUs' share), W.
        feed_available: Whether each feed delivers power.
        ats_source: Active source (node index) per ATS.
        ups_charge_frac: Battery state of charge per UPS.
        ups_on_battery: Whether each UPS runs from its battery (NUT ``OB``).
        service_level_frac: Current level per service (1 full, 0 shed).
        workload_read_level_frac: Level each workload's service had when its server's power
            was last read (None: the present levels). A reading taken before a shed still
            carries the shed service's draw; split by the present levels it would be charged to
            the services left on, and the next plan would shed more for nothing.
        service_running: Whether each service reports itself running (a restored service is
            not running until its workloads have restarted; None: unknown, taken as running
            when its level is above 0).
        psu_available: Whether each PSU is up.
        psu_share_frac: Share of its bus's load each PSU carries now (None: equal share).
        psu_outlet_on: Whether the outlet feeding each PSU is switched on (PDU ``outlet_on``;
            None: on).
        efficiency: PSU efficiency curves (None: ``nominal_efficiency_frac`` everywhere).
        nominal_efficiency_frac: Efficiency used when no curve is given.
        racklet_cooling_available_w: Cooling capacity each racklet module delivers now
            (``cooling_capacity_w`` readings; None: rated capacity), W.
        racklet_leak: Leak sensor wet per racklet.
        racklet_isolated: Liquid loop isolated per racklet.
        racklet_setpoint_c: Current inlet set-point per racklet (None: the site's), °C.
        rack_inlet_c: Current inlet temperature per rack (None: at set-point), °C.
    """

    index: SiteIndex
    server_power_w: FloatArray
    t_s: float = 0.0
    feed_available: BoolArray | None = None
    ats_source: IntArray | None = None
    ups_charge_frac: FloatArray | None = None
    ups_on_battery: BoolArray | None = None
    service_level_frac: FloatArray | None = None
    workload_read_level_frac: FloatArray | None = None
    service_running: BoolArray | None = None
    psu_available: BoolArray | None = None
    psu_share_frac: FloatArray | None = None
    psu_outlet_on: BoolArray | None = None
    efficiency: EfficiencyCurves | None = None
    nominal_efficiency_frac: float = 0.94
    racklet_cooling_available_w: FloatArray | None = None
    racklet_leak: BoolArray | None = None
    racklet_isolated: BoolArray | None = None
    racklet_setpoint_c: FloatArray | None = None
    rack_inlet_c: FloatArray | None = None
    _cache: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        ix = self.index
        defaults: dict[str, tuple[object, type]] = {
            "feed_available": (np.ones(int((ix.node_kind == 0).sum()), dtype=bool), bool),
            "ats_source": (ix.ats_sources[:, 0] if len(ix.ats_sources) else np.zeros(0, np.int64), np.int64),
            "ups_charge_frac": (np.ones(len(ix.ups_node)), np.float64),
            "ups_on_battery": (np.zeros(len(ix.ups_node), dtype=bool), bool),
            "service_level_frac": (np.ones(len(ix.service_ids)), np.float64),
            "psu_available": (np.ones(len(ix.psu_ids), dtype=bool), bool),
            "psu_outlet_on": (np.ones(len(ix.psu_ids), dtype=bool), bool),
            "racklet_cooling_available_w": (ix.racklet_cooling_capacity_w, np.float64),
            "racklet_leak": (np.zeros(len(ix.racklet_ids), dtype=bool), bool),
            "racklet_isolated": (np.zeros(len(ix.racklet_ids), dtype=bool), bool),
            "racklet_setpoint_c": (ix.racklet_setpoint_inlet_c, np.float64),
            "rack_inlet_c": (np.full(len(ix.rack_ids), np.nan), np.float64),
        }
        object.__setattr__(self, "server_power_w", _ro(self.server_power_w))
        for name, (default, dtype) in defaults.items():
            value = getattr(self, name)
            object.__setattr__(self, name, _ro(default if value is None else value, dtype))
        if self.psu_share_frac is not None:
            object.__setattr__(self, "psu_share_frac", _ro(self.psu_share_frac))
        if self.service_running is not None:
            object.__setattr__(self, "service_running", _ro(self.service_running, bool))
        if self.workload_read_level_frac is not None:
            object.__setattr__(self, "workload_read_level_frac", _ro(self.workload_read_level_frac))

    def with_(self, **changes: object) -> PowerState:
        """A copy with some fields replaced (the state itself is frozen)."""
        return replace(self, _cache={}, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_readings(cls, index: SiteIndex, latest: Mapping[tuple[str, str], float], t_s: float = 0.0) -> PowerState:
        """Build the state from the latest value per ``(device_id, metric)``.

        >>> from wattwise.model.generate import SiteSpec, generate_site
        >>> ix = SiteIndex.from_site(generate_site(SiteSpec(servers=20, servers_per_rack=10, seed=1)))
        >>> latest = {(ix.server_ids[0], "power_w"): 150.0, ("utility-a", "source_available"): 0.0}
        >>> s = PowerState.from_readings(ix, latest)
        >>> float(s.server_power_w[0]), bool(s.feed_available[0]), bool(s.server_power_w[1] == ix.server_peak_w[1])
        (150.0, False, True)
        """

        def col(ids: tuple[str, ...], metric: str, default: FloatArray) -> FloatArray:
            return np.array([latest.get((i, metric), d) for i, d in zip(ids, default.tolist(), strict=True)])

        feeds = tuple(n for n, k in zip(index.node_ids, index.node_kind.tolist(), strict=True) if k == 0)
        ats_ids = tuple(index.node_ids[int(i)] for i in np.flatnonzero(index.node_kind == 1))
        ups_ids = tuple(index.node_ids[int(i)] for i in index.ups_node)
        ats_pos = col(ats_ids, "ats_source_index", np.zeros(len(ats_ids))).astype(np.int64).clip(0, 1)
        share = None
        out_w = col(index.psu_ids, "output_power_w", np.full(len(index.psu_ids), np.nan))
        if len(out_w) and np.isfinite(out_w).all():
            bus_w = np.bincount(index.psu_bus, weights=out_w, minlength=index.n_bus)
            share = np.where(bus_w[index.psu_bus] > 0, out_w / np.maximum(bus_w[index.psu_bus], 1e-9), 0.0)
        return cls(
            index=index,
            t_s=t_s,
            server_power_w=col(index.server_ids, "power_w", index.server_peak_w),
            feed_available=col(feeds, "source_available", np.ones(len(feeds))) > 0.5,
            ats_source=index.ats_sources[np.arange(len(ats_ids)), ats_pos] if ats_ids else None,
            ups_charge_frac=col(ups_ids, "battery_charge_frac", np.ones(len(ups_ids))),
            ups_on_battery=col(ups_ids, "on_battery", np.zeros(len(ups_ids))) > 0.5,
            service_level_frac=col(index.service_ids, "throttle_frac", np.ones(len(index.service_ids))),
            service_running=col(index.service_ids, "available", np.ones(len(index.service_ids))) > 0.5,
            psu_available=col(index.psu_ids, "available", np.ones(len(index.psu_ids))) > 0.5,
            psu_share_frac=share,
            psu_outlet_on=col(index.psu_outlet_ids, "outlet_on", np.ones(len(index.psu_ids))) > 0.5,
            racklet_cooling_available_w=col(index.racklet_ids, "cooling_capacity_w", index.racklet_cooling_capacity_w),
            racklet_leak=col(index.racklet_ids, "leak_detected", np.zeros(len(index.racklet_ids))) > 0.5,
            racklet_isolated=col(index.racklet_ids, "loop_isolated", np.zeros(len(index.racklet_ids))) > 0.5,
            rack_inlet_c=col(index.rack_ids, "inlet_temp_c", np.full(len(index.rack_ids), np.nan)),
        )


class Policy(Protocol[StateT_contra]):
    """A pure decision policy: state and forecast in, a :class:`Decision` out.

    A policy never raises for an infeasible situation; it returns ``status=infeasible`` with
    its reasons and the least-bad plan it found.
    """

    @property
    def name(self) -> str:
        """Policy name written into every Decision."""
        ...

    def decide(self, state: StateT_contra, forecast: SiteForecast) -> Decision:
        """Decide what to do now."""
        ...
