"""Which service levels each server's power reading was taken at.

The allocation splits a server's measured power among the services on it by their levels
(:mod:`wattwise.decide.allocation_problem`). Right after a shed, the server's last power
reading is still the one from before it (server power is bulk-polled every 10 s, and held
while a response settles): split by the present levels, the shed service's draw is charged to
the services left on, and the next plan sheds more for nothing. The recent-peak forecast does
the same for a minute after, from the peaks read before the shed.

:class:`ReadLevels` remembers when the controller's own level changes took effect and what
each service ran at before, so the planner can give the allocation the levels each reading
was taken at, and tell the forecaster which servers' peaks to start again once a reading from
after the change has come in.

When a change takes effect is taken on the safe side for the split: a lowering (shed,
throttle down) at the decision that made it (a reading taken after it may already show part
of the drop: read at the lower level, the services left on get the whole reading), a raise
(restore, throttle up) only at the first plan after it was acknowledged (a reading taken
before that is split as if the restored service was still off: the services already on get
its early draw).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from wattwise.act.actuator import Verdict
from wattwise.act.base import Phase
from wattwise.decide.index import SiteIndex
from wattwise.model.values import ActionKind, Decision

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

LEVEL_KINDS = frozenset({ActionKind.SERVICE_SHED, ActionKind.THROTTLE, ActionKind.SERVICE_RESTORE})


@dataclass
class ReadLevels:
    """Service-level changes the controller made, and the levels each reading was taken at.

    Args:
        index: The site as arrays (service and workload order).
    """

    index: SiteIndex
    changed_s: FloatArray = field(init=False)
    """When each service's present level took effect (-inf: never changed by the controller)."""
    before_frac: FloatArray = field(init=False)
    """Each service's level before that change."""
    folded_s: FloatArray = field(init=False)
    """Per server, the latest change already folded into the forecaster's history."""
    _pending: dict[str, tuple[int, float, float, float]] = field(init=False, default_factory=dict)
    _raised: list[tuple[int, float]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._svc_pos = {s: i for i, s in enumerate(self.index.service_ids)}
        self.changed_s = np.full(len(self.index.service_ids), -np.inf)
        self.before_frac = np.ones(len(self.index.service_ids))
        self.folded_s = np.full(len(self.index.server_ids), -np.inf)

    def expect(self, decisions: Sequence[Decision], level_frac: FloatArray, now_s: float) -> None:
        """Remember the level changes a plan asks for (they count once acknowledged)."""
        for d in decisions:
            for a in d.actions:
                pos = self._svc_pos.get(a.target_id) if a.kind in LEVEL_KINDS else None
                if pos is None:
                    continue
                new = 0.0 if a.kind is ActionKind.SERVICE_SHED else (1.0 if a.value is None else float(a.value))
                self._pending[a.command_id] = (pos, now_s, float(level_frac[pos]), new)

    def acknowledged(self, verdicts: Sequence[Verdict]) -> None:
        """Fold in the acknowledged changes; forget those that failed or were refused."""
        for v in verdicts:
            hit = self._pending.pop(v.action.command_id, None)
            if hit is None or v.phase is not Phase.ACKED:
                continue
            pos, decided_s, before, new = hit
            if new < before:
                self.changed_s[pos], self.before_frac[pos] = decided_s, before
            elif new > before:
                self._raised.append((pos, before))

    def levels(
        self, read_s: FloatArray, level_frac: FloatArray, wl_server: npt.NDArray[np.int64], now_s: float
    ) -> tuple[FloatArray, BoolArray]:
        """Each workload's service level at its server's last power reading, and restarts.

        The second array marks the servers whose forecaster history should start again (a
        reading from after a change of theirs has come in).

        Args:
            read_s: Time of each server's last power reading (-inf: none).
            level_frac: Present level per service.
            wl_server: Server of each workload now.
            now_s: Time of the plan (raises acknowledged since the last plan take effect now).
        """
        for pos, before in self._raised:
            self.changed_s[pos], self.before_frac[pos] = now_s, before
        self._raised.clear()
        if len(self._pending) > 100_000:  # never answered (a dropped decision): do not grow forever
            self._pending.clear()
        svc = self.index.wl_service
        stale = read_s[wl_server] <= self.changed_s[svc]  # a reading the decision saw predates it
        at_read = np.where(stale, self.before_frac[svc], level_frac[svc])
        change = np.full(len(self.index.server_ids), -np.inf)
        np.maximum.at(change, wl_server, self.changed_s[svc])
        fold = (change > self.folded_s) & (read_s > change)
        self.folded_s = np.where(fold, change, self.folded_s)
        return at_read, fold
