"""wattwise.decide: pure decision policies (state + forecast in, a Decision out).

Policies (all follow :class:`~wattwise.decide.base.Policy`):

* :class:`~wattwise.decide.load_sharing.CurveLoadSharingPolicy` — PSU set-points (seed 000).
* :class:`~wattwise.decide.allocation.MilpAllocationPolicy` and
  :class:`~wattwise.decide.allocation.GreedyAllocationPolicy` — power-event allocation (seed 002).
* :class:`~wattwise.decide.migration.PredictiveMigrationPolicy` and
  :class:`~wattwise.decide.migration.RebalancePolicy` — overload avoidance (seeds 001, 003, 004).
* :class:`~wattwise.decide.cooling.HeatFollowingCoolingPolicy` — cooling (seed 003).
* :class:`~wattwise.decide.event_shift.DisruptionShiftPolicy` with
  :func:`~wattwise.decide.event_shift.adapt_threshold` — event processors (seed 004).
* :class:`~wattwise.decide.energy.CostAwareDeferralPolicy` — price/carbon (seed 001).
* :mod:`wattwise.decide.baselines` — NUT shutdown-all, reactive threshold, the seed's greedy,
  no migration, equal sharing.

State: build a :class:`~wattwise.decide.index.SiteIndex` once per site, then a
:class:`~wattwise.decide.base.PowerState` per reading round (``PowerState.from_readings`` in
the controller; directly from arrays in the twin).
"""

from wattwise.decide.allocation import GreedyAllocationPolicy, MilpAllocationPolicy
from wattwise.decide.base import NO_FORECAST, EfficiencyCurves, Policy, PowerState, SiteForecast
from wattwise.decide.cooling import HeatFollowingCoolingPolicy
from wattwise.decide.energy import CostAwareDeferralPolicy
from wattwise.decide.event_shift import (
    DisruptionShiftPolicy,
    ProcessorState,
    ShiftOutcomes,
    ShiftThreshold,
    adapt_threshold,
)
from wattwise.decide.index import SiteIndex
from wattwise.decide.load_sharing import CurveLoadSharingPolicy
from wattwise.decide.migration import PredictiveMigrationPolicy, RebalancePolicy

__all__ = [
    "NO_FORECAST",
    "CostAwareDeferralPolicy",
    "CurveLoadSharingPolicy",
    "DisruptionShiftPolicy",
    "EfficiencyCurves",
    "GreedyAllocationPolicy",
    "HeatFollowingCoolingPolicy",
    "MilpAllocationPolicy",
    "Policy",
    "PowerState",
    "PredictiveMigrationPolicy",
    "ProcessorState",
    "RebalancePolicy",
    "ShiftOutcomes",
    "ShiftThreshold",
    "SiteForecast",
    "SiteIndex",
    "adapt_threshold",
]
