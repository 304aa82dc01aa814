"""Event-processor shifting (seed 004) with bounded adaptive thresholds.

Processors whose predicted failure probability (PFP, from the instability predictor) crosses
the effective threshold lose their partitions before they fail. Partitions go most-impact
first (criticality and dependants of what they feed), and among equals least-disruptive first
(state to hand over); each goes to the live processor on another server with the lowest load
after the move, as long as that stays under ``max_load_frac`` (so a move never overloads the
target) and the target itself is under the threshold.

The threshold adapts, purely (value in, value out): :func:`adapt_threshold` lowers the base
threshold after missed failures and confirmed pre-emptive shifts, raises it after
unnecessary or harmful shifts, and the *effective* threshold adds a term for cluster load and
network congestion (shifting costs more when the cluster is busy). Both are clipped to
``[min_frac, max_frac]`` so the policy can never drift to "always shift" or "never shift".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from wattwise.decide.base import SiteForecast
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ShiftThreshold:
    """The adaptive PFP threshold (a value; :func:`adapt_threshold` returns a new one).

    Attributes:
        base_frac: Learned threshold before environmental terms.
        min_frac: Lower bound of any threshold.
        max_frac: Upper bound of any threshold.
        learning_rate_frac: Step per unit of net feedback.
        load_weight_frac: Threshold added per unit of cluster load above 0.5.
        congestion_weight_frac: Threshold added per unit of network congestion.
    """

    base_frac: float = 0.6
    min_frac: float = 0.3
    max_frac: float = 0.9
    learning_rate_frac: float = 0.05
    load_weight_frac: float = 0.2
    congestion_weight_frac: float = 0.2

    def effective(self, cluster_load_frac: float, congestion_frac: float) -> float:
        """Threshold in force under the given cluster load and congestion.

        >>> ShiftThreshold().effective(0.5, 0.0), round(ShiftThreshold().effective(1.0, 1.0), 6)
        (0.6, 0.9)
        """
        raw = (
            self.base_frac
            + self.load_weight_frac * (cluster_load_frac - 0.5)
            + self.congestion_weight_frac * congestion_frac
        )
        return float(np.clip(raw, self.min_frac, self.max_frac))


@dataclass(frozen=True)
class ShiftOutcomes:
    """What became of past shifts since the last adaptation (counts).

    Attributes:
        confirmed: Shifted processors that did fail or degrade (shift was right).
        unnecessary: Shifted processors that stayed healthy.
        harmful: Shifts that hurt (target lag or SLA breach after the move).
        missed: Processors that failed without a shift before.
    """

    confirmed: int = 0
    unnecessary: int = 0
    harmful: int = 0
    missed: int = 0


def adapt_threshold(t: ShiftThreshold, o: ShiftOutcomes) -> ShiftThreshold:
    """New base threshold from the outcome of past shifts (bounded).

    >>> t = ShiftThreshold()
    >>> adapt_threshold(t, ShiftOutcomes(missed=3)).base_frac < t.base_frac
    True
    >>> adapt_threshold(t, ShiftOutcomes(unnecessary=100)).base_frac
    0.9
    """
    n = o.confirmed + o.unnecessary + o.harmful + o.missed
    if n == 0:
        return t
    push_up = o.unnecessary + 2 * o.harmful
    push_down = 2 * o.missed + 0.5 * o.confirmed
    step = t.learning_rate_frac * (push_up - push_down) / np.sqrt(n)
    return replace(t, base_frac=float(np.clip(t.base_frac + step, t.min_frac, t.max_frac)))


@dataclass(frozen=True, eq=False)
class ProcessorState:
    """Event processors and partitions, as arrays.

    Attributes:
        processor_ids: Processor ids.
        processor_server: Server index hosting each processor.
        processor_load_frac: Load per processor (CPU or lag-weighted), 0…1.
        processor_available: Whether each processor is up.
        partition_ids: Partition ids.
        partition_owner: Processor index owning each partition.
        partition_load_frac: Load each partition brings to its owner.
        partition_rank: Tier rank of what each partition feeds (0 critical … 3 low).
        partition_dependants: Services downstream of each partition.
        partition_state_gib: State handed over when a partition moves, GiB.
        cluster_load_frac: Mean cluster load.
        congestion_frac: Network congestion, 0…1.
        threshold: The adaptive threshold in force.
        t_s: Time of the state, s.
    """

    processor_ids: tuple[str, ...]
    processor_server: IntArray
    processor_load_frac: FloatArray
    partition_ids: tuple[str, ...]
    partition_owner: IntArray
    processor_available: BoolArray | None = None
    partition_load_frac: FloatArray | None = None
    partition_rank: IntArray | None = None
    partition_dependants: IntArray | None = None
    partition_state_gib: FloatArray | None = None
    cluster_load_frac: float = 0.5
    congestion_frac: float = 0.0
    threshold: ShiftThreshold = field(default_factory=ShiftThreshold)
    t_s: float = 0.0

    def __post_init__(self) -> None:
        n_p, n_k = len(self.processor_ids), len(self.partition_ids)
        per_proc = np.bincount(np.asarray(self.partition_owner, dtype=np.int64), minlength=n_p)
        share = np.asarray(self.processor_load_frac, dtype=np.float64) / np.maximum(per_proc, 1)
        defaults = {
            "processor_server": (None, np.int64),
            "processor_load_frac": (None, np.float64),
            "partition_owner": (None, np.int64),
            "processor_available": (np.ones(n_p, dtype=bool), bool),
            "partition_load_frac": (share[np.asarray(self.partition_owner, dtype=np.int64)], np.float64),
            "partition_rank": (np.full(n_k, 2), np.int64),
            "partition_dependants": (np.zeros(n_k), np.int64),
            "partition_state_gib": (np.full(n_k, 0.1), np.float64),
        }
        for name, (default, dtype) in defaults.items():
            value = getattr(self, name)
            arr = np.array(default if value is None else value, dtype=dtype, copy=True)
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)


class DisruptionShiftPolicy:
    """Move partitions off processors whose PFP crosses the adaptive threshold.

    Forecast: ``SiteForecast.processor_failure_prob`` (one per processor).

    Args:
        max_load_frac: Highest load a target may reach after a move.
        max_moves: Partition moves per call.
        state_weight: Disruption weight of state size (vs. impact).

    >>> import numpy as np
    >>> st = ProcessorState(processor_ids=("ep-0", "ep-1", "ep-2"), processor_server=np.array([0, 1, 2]),
    ...                     processor_load_frac=np.array([0.6, 0.2, 0.5]), partition_ids=("p0", "p1"),
    ...                     partition_owner=np.array([0, 0]))
    >>> d = DisruptionShiftPolicy().decide(st, SiteForecast(processor_failure_prob=np.array([0.8, 0.0, 0.1])))
    >>> [(a.target_id, a.dest_id) for a in d.actions]
    [('p0', 'ep-1'), ('p1', 'ep-1')]
    """

    name = "disruption_shift"

    def __init__(self, max_load_frac: float = 0.8, max_moves: int = 64, state_weight: float = 0.3) -> None:
        self.max_load_frac = max_load_frac
        self.max_moves = max_moves
        self.state_weight = state_weight

    def decide(self, state: ProcessorState, forecast: SiteForecast) -> Decision:
        """Plan partition moves for this heartbeat round."""
        pfp = forecast.processor_failure_prob
        thr = state.threshold.effective(state.cluster_load_frac, state.congestion_frac)
        if pfp is None or not (pfp >= thr).any():
            return Decision(
                policy_name=self.name,
                status=DecisionStatus.SKIPPED,
                reasons=(f"no processor at PFP >= {thr:.2f}",),
                t_s=state.t_s,
            )
        assert state.processor_available is not None
        failing = pfp >= thr
        load = state.processor_load_frac.copy()
        eligible = state.processor_available & ~failing
        actions: list[Action] = []
        stuck: list[str] = []
        for k in self._order(state, failing).tolist():
            dest = self._target(state, load, eligible, k)
            if dest < 0 or len(actions) >= self.max_moves:
                stuck.append(state.partition_ids[k])
                continue
            actions.append(self._move(state, k, dest, float(pfp[state.partition_owner[k]]), thr))
            assert state.partition_load_frac is not None
            load[dest] += state.partition_load_frac[k]
            load[state.partition_owner[k]] -= state.partition_load_frac[k]
        reasons = [f"{int(failing.sum())} processors at PFP >= {thr:.2f}; {len(actions)} partitions moved"]
        if stuck:
            reasons.append(f"{len(stuck)} partitions have no target under {self.max_load_frac:.0%} load: {stuck[:10]}")
        return Decision(
            policy_name=self.name,
            status=DecisionStatus.INFEASIBLE if stuck else DecisionStatus.OK,
            actions=tuple(actions),
            reasons=tuple(reasons),
            predicted_effect={"threshold_frac": thr, "max_load_frac": float(load[eligible].max(initial=0.0))},
            t_s=state.t_s,
        )

    def _order(self, state: ProcessorState, failing: BoolArray) -> IntArray:
        """Partitions of failing processors: most impact first, then least disruption."""
        assert state.partition_rank is not None
        assert state.partition_dependants is not None
        assert state.partition_state_gib is not None
        ks = np.flatnonzero(failing[state.partition_owner])
        impact = (3 - state.partition_rank[ks]) / 3.0 + state.partition_dependants[ks] / max(
            1.0, float(state.partition_dependants.max(initial=0))
        )
        gib = state.partition_state_gib[ks] / max(1e-9, float(state.partition_state_gib.max(initial=0.0)))
        order: IntArray = ks[np.argsort(-(impact - self.state_weight * gib), kind="stable")]
        return order

    def _target(self, state: ProcessorState, load: FloatArray, eligible: BoolArray, k: int) -> int:
        assert state.partition_load_frac is not None
        owner = state.partition_owner[k]
        after = load + state.partition_load_frac[k]
        ok = eligible & (after <= self.max_load_frac) & (state.processor_server != state.processor_server[owner])
        if not ok.any():
            return -1
        return int(np.argmin(np.where(ok, after, np.inf)))

    def _move(self, state: ProcessorState, k: int, dest: int, p: float, thr: float) -> Action:
        owner = int(state.partition_owner[k])
        return Action(
            kind=ActionKind.PARTITION_MOVE,
            target_id=state.partition_ids[k],
            source_id=state.processor_ids[owner],
            dest_id=state.processor_ids[dest],
            reason=f"{state.processor_ids[owner]} PFP {p:.2f} >= {thr:.2f}",
            not_before_s=state.t_s,
        )
