"""Event processors for the controller: heartbeat detectors, failure probabilities, partition owners.

The shift policy (:class:`~wattwise.decide.event_shift.DisruptionShiftPolicy`) decides on a
:class:`~wattwise.decide.event_shift.ProcessorState` and a predicted failure probability per
processor. :class:`ProcessorWatch` builds both from the latest readings:

* it keeps each processor's recent ``heartbeat_gap_s`` and ``lag_s`` samples (one per new
  reading time);
* after ``warmup_s`` of samples it fits one
  :class:`~wattwise.predict.heartbeat.HeartbeatInstabilityDetector` per processor on that
  warm-up (so the limits are the processor's own, learned while the controller watched; start
  the controller in a calm period, as for any baseline);
* every decision it scores the last ``window`` samples and takes the newest sample's failure
  probability (0 for a processor not fitted yet, or whose fit failed: the reason is kept in
  ``fit_errors`` and logged once);
* it tracks partition ownership from acknowledged ``partition_move`` actions, since readings
  carry heartbeats, not ownership.

Lag is judged against the SLA, not only against the warm-up: a processor's lag alarms only
above half its ``sla_latency_s`` (the detector's lag scale is at least ``sla / 16`` with its
z limit of 8), since a little lag that threatens no SLA is no instability. And a processor
that has just received partitions catches up on their backlog: for ``grace_s`` after an
acknowledged move *to* it, only its heartbeat gap can raise its failure probability, so one
move does not set off a cascade of moves away from its destination.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from wattwise.act.actuator import Verdict
from wattwise.act.base import Phase
from wattwise.control.loop import LatestValues
from wattwise.decide.event_shift import ProcessorState
from wattwise.errors import PredictionError
from wattwise.model.site import Site
from wattwise.model.values import ActionKind
from wattwise.predict.base import Frame
from wattwise.predict.heartbeat import HeartbeatInstabilityDetector

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
SIGNALS = ("heartbeat_gap_s", "lag_s")


class ProcessorWatch:
    """Per-processor heartbeat history, detectors and partition owners.

    Args:
        site: The site (its event processors and their partitions).
        server_ids: Server ids in the policies' index order (processor host positions).
        warmup_s: Seconds of samples a processor's detector is fitted on.
        window: Recent samples scored per decision (the detector fills gaps causally).
        min_samples: Fewest warm-up samples a fit needs.
        grace_s: Seconds after receiving partitions during which lag alone does not count.
    """

    def __init__(
        self,
        site: Site,
        server_ids: Sequence[str],
        *,
        warmup_s: float = 120.0,
        window: int = 30,
        min_samples: int = 20,
        grace_s: float = 60.0,
    ) -> None:
        procs = site.event_processors
        self._sla_s = np.array([p.sla_latency_s for p in procs], dtype=np.float64)
        self.grace_s = grace_s
        self._received_t_s = np.full(len(procs), -np.inf)
        pos = {s: i for i, s in enumerate(server_ids)}
        self.processor_ids = tuple(p.id for p in procs)
        self.processor_server = np.array([pos[p.server] for p in procs], dtype=np.int64)
        self.partition_ids = tuple(k for p in procs for k in p.partitions)
        self.partition_owner = np.array([i for i, p in enumerate(procs) for _ in p.partitions], dtype=np.int64)
        self._proc_pos = {p: i for i, p in enumerate(self.processor_ids)}
        self._part_pos = {k: i for i, k in enumerate(self.partition_ids)}
        self.warmup_s = warmup_s
        self.window = window
        self.min_samples = min_samples
        self._samples: list[deque[tuple[float, float, float]]] = [deque() for _ in procs]
        self._first_t_s: list[float | None] = [None] * len(procs)
        self.detectors: list[HeartbeatInstabilityDetector | None] = [None] * len(procs)
        self.fit_errors: dict[str, str] = {}
        self._last_t_s = -np.inf

    def observe(self, latest: LatestValues) -> None:
        """Take each processor's newest gap/lag sample (once per reading time); fit when warm."""
        for i, pid in enumerate(self.processor_ids):
            hit = latest.values.get((pid, "heartbeat_gap_s"))
            if hit is None:
                continue
            gap_s, t_s = hit
            self._last_t_s = max(self._last_t_s, t_s)
            buf = self._samples[i]
            if buf and t_s <= buf[-1][0]:
                continue
            lag = latest.values.get((pid, "lag_s"))
            buf.append((t_s, gap_s, lag[0] if lag is not None else float("nan")))
            if self._first_t_s[i] is None:
                self._first_t_s[i] = t_s
            if self.detectors[i] is None and pid not in self.fit_errors:
                self._maybe_fit(i, t_s)
            elif self.detectors[i] is not None:
                while len(buf) > self.window:
                    buf.popleft()

    def _maybe_fit(self, i: int, t_s: float) -> None:
        first = self._first_t_s[i]
        buf = self._samples[i]
        if first is None or t_s - first < self.warmup_s or len(buf) < self.min_samples:
            return
        arr = np.array(buf, dtype=np.float64)
        lag_known = bool(np.isfinite(arr[:, 2]).any())
        det = HeartbeatInstabilityDetector(
            aux_signals=("lag_s",) if lag_known else (),
            min_train_samples=self.min_samples,
            min_scale=max(0.1, float(self._sla_s[i]) / 16.0),
        )
        signals = SIGNALS if lag_known else SIGNALS[:1]
        try:
            det.fit(Frame(arr[:, 0], arr[:, 1 : 1 + len(signals)], signals))
        except PredictionError as err:
            pid = self.processor_ids[i]
            self.fit_errors[pid] = str(err)
            logger.warning("processor %s: no heartbeat detector (%s); its failure probability stays 0", pid, err)
            return
        self.detectors[i] = det
        while len(buf) > self.window:
            buf.popleft()

    def failure_prob(self, now_s: float) -> FloatArray:
        """Newest predicted failure probability per processor (0 where no detector is fitted)."""
        out = np.zeros(len(self.processor_ids))
        for i, det in enumerate(self.detectors):
            buf = self._samples[i]
            if det is None or not buf:
                continue
            arr = np.array(buf, dtype=np.float64)
            signals = ("heartbeat_gap_s", *det.aux_signals)
            score = det.score(Frame(arr[:, 0], arr[:, 1 : 1 + len(signals)], signals))
            catching_up = now_s - self._received_t_s[i] < self.grace_s
            if catching_up and score.top_signals and score.top_signals[-1] != "heartbeat_gap_s":
                continue
            out[i] = float(score.failure_prob_frac[-1])
        return out

    def state(self, latest: LatestValues, now_s: float) -> ProcessorState:
        """The shift policy's view: hosts, loads (CPU), availability and partition owners."""
        load = np.array([latest.get(p, "cpu_frac", 0.5) for p in self.processor_ids], dtype=np.float64)
        up = np.array([latest.get(p, "available", 1.0) for p in self.processor_ids], dtype=np.float64) > 0.5
        return ProcessorState(
            processor_ids=self.processor_ids,
            processor_server=self.processor_server,
            processor_load_frac=np.clip(np.nan_to_num(load, nan=0.5), 0.0, 1.0),
            processor_available=up,
            partition_ids=self.partition_ids,
            partition_owner=self.partition_owner.copy(),
            cluster_load_frac=float(load.mean()) if load.size else 0.5,
            t_s=now_s,
        )

    def observe_verdicts(self, verdicts: Sequence[Verdict]) -> None:
        """A partition move acknowledged changes its owner."""
        for v in verdicts:
            a = v.action
            if (
                v.phase is Phase.ACKED
                and a.kind is ActionKind.PARTITION_MOVE
                and a.target_id in self._part_pos
                and a.dest_id in self._proc_pos
            ):
                dest = self._proc_pos[a.dest_id]
                self.partition_owner[self._part_pos[a.target_id]] = dest
                t_s = a.not_before_s if a.not_before_s is not None else self._last_t_s
                self._received_t_s[dest] = max(self._received_t_s[dest], t_s)
