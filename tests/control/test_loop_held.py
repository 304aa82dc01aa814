"""A held action (a staggered shed layer or restore step) is sent on the first tick after it falls due.

Without this, a sequence the policy staggers by half a second would advance only at the next
routine decision (``decide_period_s``) or the next event.
"""

from __future__ import annotations

from control.loop_support import single_rack_armed
from wattwise.act.base import Phase
from wattwise.decide.base import PowerState, SiteForecast
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus


class ShedLaterPolicy:
    """Every plan asks for one shed, two seconds after the state's time."""

    name = "shed_later"

    def __init__(self, target: str) -> None:
        self.target = target

    def decide(self, state: PowerState, forecast: SiteForecast) -> Decision:
        action = Action(
            kind=ActionKind.SERVICE_SHED, target_id=self.target, reason="test", not_before_s=state.t_s + 2.0
        )
        return Decision(policy_name=self.name, status=DecisionStatus.OK, actions=(action,))


async def test_held_action_is_sent_when_due_not_at_the_next_routine_decision() -> None:
    twin, a, low = single_rack_armed(ShedLaterPolicy, "held")
    t0 = twin.t_s
    first = await a.controller.tick(force_decide=True)
    assert first.decided
    assert first.verdicts == ()  # held: due two seconds later
    assert a.actuator.next_due_s == t0 + 2.0
    twin.step(1.0)
    early = await a.controller.tick()
    assert early.event is None
    assert not early.decided  # not due yet, no event, routine decision a minute away
    twin.step(1.0)
    due = await a.controller.tick()
    assert due.decided
    assert [(v.action.target_id, v.phase) for v in due.verdicts] == [(low, Phase.ACKED)]
    assert a.actuator.next_due_s == float("inf")
