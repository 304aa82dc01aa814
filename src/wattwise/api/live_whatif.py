"""What-if for the live backend: the chain after a loss, and what the policies WOULD decide.

The physics comes from :func:`wattwise.api.whatif.lose`; then the planner's policies run on a
copy of the latest readings with the lost feeds dark and the UPS below them on battery. Nothing
is sent and the planner's own state (its forecaster history) is left untouched.
"""

from __future__ import annotations

import logging

import numpy as np

from wattwise.api.live_views import Values, trim_decision, what_if_summary
from wattwise.api.schemas import WhatIfResult
from wattwise.api.views import node_loads
from wattwise.api.whatif import lose
from wattwise.control.loop import LatestValues
from wattwise.control.planner import PeakForecaster, PolicyPlanner
from wattwise.errors import WattwiseError
from wattwise.model.values import Decision, DecisionStatus

logger = logging.getLogger(__name__)

MAX_ACTIONS_SHOWN = 30
"""Actions of one decision, and recent outcomes, shown in a plan (load sharing moves thousands)."""


def would_decide(
    planner: PolicyPlanner, values: Values, lost: tuple[str, ...], dead: frozenset[str], t_s: float
) -> list[Decision]:
    """Every policy's decision on the latest values with the dead feeds dark and their UPS on battery."""
    site = planner.graph.site
    latest = LatestValues(dict(values))
    feeds = {f.id for f in site.feeds}
    for dev in dead & feeds:
        latest.values[(dev, "source_available")] = (0.0, t_s)
    for u in site.ups:
        if u.input in dead and u.id not in lost:
            latest.values[(u.id, "on_battery")] = (1.0, t_s)
    state = planner.state(latest, t_s)
    forecast = PeakForecaster().observe(state.server_power_w)
    out: list[Decision] = []
    for policy in planner.policies:
        try:
            out.append(policy.decide(state, forecast))
        except WattwiseError as err:
            logger.warning("what-if: policy %s failed: %s", policy.name, err)
    return out


def plan_for_loss(
    planner: PolicyPlanner, sides: dict[str, str], values: Values, lose_ids: tuple[str, ...], t_s: float
) -> WhatIfResult:
    """Loads after losing ``lose_ids`` now, what is overloaded or unpowered, and the plan.

    Raises:
        KeyError: An id is not a feed, ATS, UPS or PDU of the site.
    """
    graph = planner.graph
    psu_w = np.array([values.get((p, "input_power_w"), (0.0, 0.0))[0] for p in graph.psu_ids])
    if not psu_w.any():  # no telemetry yet: every server at half its span
        psu_w = graph.equal_share_psu_input_w(graph.server_idle_w + 0.5 * (graph.server_peak_w - graph.server_idle_w))
    outcome = lose(graph, psu_w, frozenset(lose_ids))
    loads = outcome.loads
    over = [n for n, w, c in zip(loads.node_ids, loads.load_w, loads.capacity_w, strict=True) if w > c]
    decisions = would_decide(planner, values, lose_ids, outcome.dead_nodes, t_s)
    chosen = [d for d in decisions if d.actions and d.status is DecisionStatus.OK] or decisions
    return WhatIfResult(
        lose=lose_ids,
        t_s=t_s,
        nodes=node_loads(loads, sides, [i for i, k in enumerate(loads.node_kind) if k != "pdu"]),
        overloaded=tuple(over),
        servers_unpowered=outcome.servers_unpowered,
        decision=trim_decision(chosen[0], MAX_ACTIONS_SHOWN, t_s) if chosen else None,
        summary=what_if_summary(lose_ids, outcome, over, decisions),
    )
