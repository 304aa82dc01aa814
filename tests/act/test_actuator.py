from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from wattwise.act.actuator import Actuator
from wattwise.act.base import JournalEntry, MemoryJournal, Mode, Phase
from wattwise.act.interlocks import (
    CriticalClosureInterlock,
    DependencyOrderInterlock,
    FlapInterlock,
    InterlockContext,
    LimitInterlock,
)
from wattwise.errors import DeviceUnavailable
from wattwise.model.clock import SimClock
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.graph import SiteGraph
from wattwise.model.site import Tier, Workload
from wattwise.model.values import Action, ActionKind, ActionResult, Decision, DecisionStatus, Reading


class StateDriver:
    """A stateful in-test device: shed services stay shed until restored."""

    name = "state"

    def __init__(self, fail: bool = False, hang: bool = False) -> None:
        self.shed: set[str] = set()
        self.applied: list[str] = []
        self.fail = fail
        self.hang = hang

    def supports(self, kind: ActionKind) -> bool:
        return kind in {ActionKind.SERVICE_SHED, ActionKind.SERVICE_RESTORE}

    async def read(self) -> list[Reading]:
        return [Reading(s, "available", 0.0, 0.0) for s in sorted(self.shed)]

    async def apply(self, action: Action) -> ActionResult:
        if self.hang:
            await asyncio.sleep(10)
        if self.fail:
            raise DeviceUnavailable("dead", device_id=action.target_id)
        self.applied.append(action.command_id)
        if action.kind is ActionKind.SERVICE_SHED:
            self.shed.add(action.target_id)
        else:
            self.shed.discard(action.target_id)
        return ActionResult(command_id=action.command_id, ok=True)

    async def close(self) -> None:
        return None


@pytest.fixture
def graph() -> SiteGraph:
    return SiteGraph(generate_site(SiteSpec(servers=40, servers_per_rack=10, racks_per_hall=4, services=12, seed=5)))


def _low_service(graph: SiteGraph) -> str:
    lock = CriticalClosureInterlock(graph)
    return next(s.id for s in graph.site.services if s.tier is Tier.LOW and s.id not in lock.protected)


def _critical(graph: SiteGraph) -> str:
    return next(s.id for s in graph.site.services if s.tier is Tier.CRITICAL)


def _actuator(graph: SiteGraph, driver: StateDriver, mode: Mode, **kw: object) -> tuple[Actuator, MemoryJournal]:
    journal = MemoryJournal()
    locks = [CriticalClosureInterlock(graph), LimitInterlock(graph), FlapInterlock(min_dwell_s=60)]
    act = Actuator(mode, journal, lambda a: driver, locks, SimClock(), timeout_s=0.2, **kw)  # type: ignore[arg-type]
    return act, journal


def _decision(*actions: Action) -> Decision:
    return Decision(policy_name="test", status=DecisionStatus.OK, actions=actions)


async def test_armed_journals_before_and_after_and_is_idempotent(graph: SiteGraph) -> None:
    driver = StateDriver()
    act, journal = _actuator(graph, driver, Mode.ARMED)
    shed = Action(kind=ActionKind.SERVICE_SHED, target_id=_low_service(graph), reason="power event", decision_id="d1")
    ctx = InterlockContext(t_s=0.0, power_event=True)
    out = await act.execute([_decision(shed)], ctx)
    assert [v.phase for v in out] == [Phase.ACKED]
    assert [e.phase for e in journal.entries()] == [Phase.PLANNED, Phase.SENT, Phase.ACKED]
    # Same intent again (a re-plan, new decision id): nothing is sent twice.
    again = shed.model_copy(update={"decision_id": "d2"})
    assert await act.execute([_decision(again)], ctx) == []
    assert len(driver.applied) == 1


async def test_dry_run_sends_nothing_and_plan_equals_dry_run(graph: SiteGraph) -> None:
    driver = StateDriver()
    act, journal = _actuator(graph, driver, Mode.DRY_RUN)
    actions = [
        Action(kind=ActionKind.SERVICE_SHED, target_id=_low_service(graph), decision_id="d"),
        Action(kind=ActionKind.SERVICE_SHED, target_id=_critical(graph), decision_id="d"),
    ]
    ctx = InterlockContext(t_s=0.0)
    planned = act.plan([_decision(*actions)], ctx)
    done = await act.execute([_decision(*actions)], ctx)
    assert driver.applied == []
    assert [(v.action.command_id, v.phase) for v in planned] == [
        (actions[0].command_id, Phase.SENT),
        (actions[1].command_id, Phase.REFUSED),
    ]
    assert [v.action.command_id for v in done] == [v.action.command_id for v in planned]
    assert Phase.DRY_RUN in {e.phase for e in journal.entries()}


async def test_critical_service_shed_is_refused_with_reason(graph: SiteGraph) -> None:
    driver = StateDriver()
    act, journal = _actuator(graph, driver, Mode.ARMED)
    crit = _critical(graph)
    out = await act.execute([_decision(Action(kind=ActionKind.SERVICE_SHED, target_id=crit))], InterlockContext(0.0))
    assert out[0].phase is Phase.REFUSED
    assert "critical" in out[0].message
    assert driver.applied == []
    assert journal.entries()[-1].phase is Phase.REFUSED


async def test_flap_refused_within_dwell_but_allowed_after(graph: SiteGraph) -> None:
    driver = StateDriver()
    act, _ = _actuator(graph, driver, Mode.ARMED)
    svc = _low_service(graph)
    await act.execute([_decision(Action(kind=ActionKind.SERVICE_SHED, target_id=svc))], InterlockContext(0.0))
    restore = Action(kind=ActionKind.SERVICE_RESTORE, target_id=svc)
    out = await act.execute([_decision(restore)], InterlockContext(10.0))
    assert out[0].phase is Phase.REFUSED
    assert "flap" in out[0].message
    out = await act.execute([_decision(restore)], InterlockContext(100.0))
    assert out[0].phase is Phase.ACKED


async def test_restore_refused_when_headroom_too_small(graph: SiteGraph) -> None:
    driver = StateDriver()
    act, _ = _actuator(graph, driver, Mode.ARMED)
    svc = _low_service(graph)
    ctx = InterlockContext(0.0, headroom_w=dict.fromkeys(graph.node_ids, 100.0), service_power_w={svc: 5000.0})
    out = await act.execute([_decision(Action(kind=ActionKind.SERVICE_RESTORE, target_id=svc))], ctx)
    assert out[0].phase is Phase.REFUSED
    assert "headroom" in out[0].message


@pytest.mark.parametrize("driver", [StateDriver(fail=True), StateDriver(hang=True)], ids=["dead", "hung"])
async def test_driver_failure_is_journaled_not_raised(graph: SiteGraph, driver: StateDriver) -> None:
    act, journal = _actuator(graph, driver, Mode.ARMED)
    out = await act.execute(
        [_decision(Action(kind=ActionKind.SERVICE_SHED, target_id=_low_service(graph)))], InterlockContext(0.0)
    )
    assert out[0].phase is Phase.FAILED
    assert journal.entries()[-1].phase is Phase.FAILED


async def test_approval_flow(graph: SiteGraph) -> None:
    driver = StateDriver()
    act, journal = _actuator(graph, driver, Mode.ARMED, approval_kinds=frozenset({ActionKind.SERVICE_SHED}))
    svc = _low_service(graph)
    a = Action(kind=ActionKind.SERVICE_SHED, target_id=svc)
    out = await act.execute([_decision(a)], InterlockContext(0.0))
    assert out[0].phase is Phase.PENDING
    assert driver.applied == []
    verdict = await act.approve(a.command_id, actor="alice")
    assert verdict.phase is Phase.ACKED
    assert driver.shed == {svc}
    assert any(e.phase is Phase.APPROVED and e.actor == "alice" for e in journal.entries())


def test_observe_mode_never_sends(graph: SiteGraph) -> None:
    driver = StateDriver()
    act, journal = _actuator(graph, driver, Mode.OBSERVE)
    a = Action(kind=ActionKind.SERVICE_SHED, target_id=_low_service(graph))
    out = asyncio.run(act.execute([_decision(a)], InterlockContext(0.0)))
    assert out[0].phase is Phase.PLANNED
    assert driver.applied == []
    assert [e.phase for e in journal.entries()] == [Phase.PLANNED]


def _chain(graph: SiteGraph) -> tuple[str, str]:
    """A non-protected service and one of its non-protected dependencies."""
    lock = CriticalClosureInterlock(graph)
    for s in graph.site.services:
        for d in s.depends_on:
            if s.id not in lock.protected and d not in lock.protected:
                return s.id, d
    raise AssertionError("site has no unprotected dependency edge")


def test_dependency_order_holds_out_of_order_steps(graph: SiteGraph) -> None:
    from wattwise.act.interlocks import DependencyOrderInterlock

    dependant, dependency = _chain(graph)
    lock = DependencyOrderInterlock(graph)
    restore = Action(kind=ActionKind.SERVICE_RESTORE, target_id=dependant)
    reason = lock.check(restore, InterlockContext(0.0, services_down=frozenset({dependant, dependency})))
    assert reason is not None
    assert dependency in reason
    assert lock.check(restore, InterlockContext(0.0, services_down=frozenset({dependant}))) is None
    shed = Action(kind=ActionKind.SERVICE_SHED, target_id=dependency)
    assert lock.check(shed, InterlockContext(0.0)) is not None
    assert lock.check(shed, InterlockContext(0.0, services_down=frozenset(graph.dependants[dependency]))) is None


async def test_same_tick_sequence_passes_in_order(graph: SiteGraph) -> None:
    from wattwise.act.interlocks import DependencyOrderInterlock

    dependant, dependency = _chain(graph)
    others = set(graph.dependants[dependency]) - {dependant}
    driver = StateDriver()
    journal = MemoryJournal()
    act = Actuator(Mode.ARMED, journal, lambda a: driver, [DependencyOrderInterlock(graph)], SimClock())
    ctx = InterlockContext(0.0, services_down=frozenset(others))
    sheds = [Action(kind=ActionKind.SERVICE_SHED, target_id=t) for t in (dependant, dependency)]
    out = await act.execute([_decision(*sheds)], ctx)
    assert [v.phase for v in out] == [Phase.ACKED, Phase.ACKED]
    # Reverse order in one decision: the dependency's shed is held, not sent.
    driver2 = StateDriver()
    act2 = Actuator(Mode.ARMED, MemoryJournal(), lambda a: driver2, [DependencyOrderInterlock(graph)], SimClock())
    out = await act2.execute([_decision(*reversed(sheds))], ctx)
    assert out[0].phase is Phase.REFUSED
    assert "held" in out[0].message
    assert driver2.shed == {dependant}


async def test_staggered_actions_wait_for_their_time(graph: SiteGraph) -> None:
    driver = StateDriver()
    clock = SimClock()
    act = Actuator(Mode.ARMED, MemoryJournal(), lambda a: driver, [], clock)
    svc = _low_service(graph)
    later = Action(kind=ActionKind.SERVICE_SHED, target_id=svc, not_before_s=10.0)
    assert await act.execute([_decision(later)], InterlockContext(0.0)) == []
    clock.advance_s(5.0)
    # A re-plan asks for the same intent later still: the first time given is kept.
    replanned = later.model_copy(update={"not_before_s": 15.0})
    assert await act.execute([_decision(replanned)], InterlockContext(5.0)) == []
    clock.advance_s(5.0)
    out = await act.execute([_decision(replanned.model_copy(update={"not_before_s": 20.0}))], InterlockContext(10.0))
    assert [v.phase for v in out] == [Phase.ACKED]


def _own_psu_workload(graph: SiteGraph) -> Workload:
    """A workload on a server with its own PSUs (its outlets feed it alone, not a racklet)."""
    for w in graph.site.workloads:
        outlet = graph.power_path(w.server)[0][1]
        if [graph.server_ids[i] for i in graph.servers_below(outlet)] == [w.server]:
            return w
    raise AssertionError("no server with its own PSUs")


def test_an_outlet_goes_off_only_after_its_servers_services_are_shed(graph: SiteGraph) -> None:
    from wattwise.act.interlocks import DependencyOrderInterlock

    lock = DependencyOrderInterlock(graph)
    wl = _own_psu_workload(graph)
    outlets = [path[1] for path in graph.power_path(wl.server)]
    services = {w.service for w in graph.site.workloads if w.server == wl.server}
    last = Action(kind=ActionKind.OUTLET_OFF, target_id=outlets[-1])
    others_off = frozenset(outlets[:-1])
    # The server's services still run: darkening its last outlet is held.
    reason = lock.check(last, InterlockContext(0.0, outlets_off=others_off))
    assert reason is not None and wl.service in reason
    # Shed in this very tick (sent, not yet seen shed by a reading): still held.
    ctx = InterlockContext(
        0.0, outlets_off=others_off, services_down=frozenset(services), shed_this_tick=frozenset(services)
    )
    assert lock.check(last, ctx) is not None
    # Confirmed shed: allowed.
    assert lock.check(last, InterlockContext(0.0, outlets_off=others_off, services_down=frozenset(services))) is None
    # While another outlet still feeds the server, an outlet may go off (PSU maintenance).
    if len(outlets) > 1:
        assert lock.check(Action(kind=ActionKind.OUTLET_OFF, target_id=outlets[0]), InterlockContext(0.0)) is None


async def test_a_failed_shed_keeps_its_host_powered(graph: SiteGraph) -> None:
    """The shed fails at the device; the outlet-off of the same plan must not go out after it."""
    from wattwise.act.interlocks import DependencyOrderInterlock

    wl = _own_psu_workload(graph)
    outlets = [path[1] for path in graph.power_path(wl.server)]
    services = sorted({w.service for w in graph.site.workloads if w.server == wl.server})
    driver = StateDriver(fail=True)
    act = Actuator(Mode.ARMED, MemoryJournal(), lambda a: driver, [DependencyOrderInterlock(graph)], SimClock())
    sheds = [Action(kind=ActionKind.SERVICE_SHED, target_id=s) for s in services]
    offs = [Action(kind=ActionKind.OUTLET_OFF, target_id=o) for o in outlets]
    down_elsewhere = frozenset(s.id for s in graph.site.services) - set(services)
    out = await act.execute([_decision(*sheds, *offs)], InterlockContext(0.0, services_down=down_elsewhere))
    by_kind = {(v.action.kind, v.phase) for v in out}
    assert (ActionKind.SERVICE_SHED, Phase.FAILED) in by_kind
    last_off = [v for v in out if v.action.target_id == outlets[-1]]
    assert last_off[0].phase is Phase.REFUSED


class LayerDriver(StateDriver):
    """Records when each action arrives and answers it after a delay; may refuse one target."""

    def __init__(self, refuse: str | None = None, delay_s: float = 0.01) -> None:
        super().__init__()
        self.refuse = refuse
        self.delay_s = delay_s
        self.arrived: list[tuple[str, int]] = []
        self.answered: list[str] = []

    async def apply(self, action: Action) -> ActionResult:
        self.arrived.append((action.target_id, len(self.answered)))
        await asyncio.sleep(self.delay_s)
        self.answered.append(action.target_id)
        if action.target_id == self.refuse:
            return ActionResult(command_id=action.command_id, ok=False, message="device said no")
        return await super().apply(action)


def _low_services(graph: SiteGraph, n: int) -> list[str]:
    lock = CriticalClosureInterlock(graph)
    deps = {d for s in graph.site.services for d in s.depends_on}
    free = [s.id for s in graph.site.services if s.tier is Tier.LOW and s.id not in lock.protected and s.id not in deps]
    assert len(free) >= n
    return free[:n]


async def test_a_sequence_goes_out_once_the_one_before_is_acknowledged(graph: SiteGraph) -> None:
    driver = LayerDriver()
    act, journal = _actuator(graph, driver, Mode.ARMED)
    a, b, c = _low_services(graph, 3)
    layered = [
        Action(kind=ActionKind.SERVICE_SHED, target_id=c, decision_id="d", sequence=1),
        Action(kind=ActionKind.SERVICE_SHED, target_id=a, decision_id="d", sequence=0),
        Action(kind=ActionKind.SERVICE_SHED, target_id=b, decision_id="d", sequence=0),
    ]
    out = await act.execute([_decision(*layered)], InterlockContext(t_s=0.0, power_event=True))
    assert [v.phase for v in out] == [Phase.ACKED] * 3
    # a and b left together (neither had an answer yet); c only after both were answered.
    assert driver.arrived == [(a, 0), (b, 0), (c, 2)]
    assert act.next_due_s == float("inf")  # nothing held for later: no fixed delay between layers
    sent = [e.target_id for e in journal.entries() if e.phase is Phase.SENT]
    assert sent == [a, b, c]
    # wattwise plan lists them in the same order armed sends them.
    fresh, _ = _actuator(graph, LayerDriver(), Mode.ARMED)
    assert [v.action.target_id for v in fresh.plan([_decision(*layered)], InterlockContext(0.0))] == [a, b, c]


def _low_pair(graph: SiteGraph) -> tuple[str, str]:
    """A low-tier service and a dependency of it that only it depends on, neither protected."""
    lock = CriticalClosureInterlock(graph)
    users = {d: [s.id for s in graph.site.services if d in s.depends_on] for d in graph.services}
    pairs = [
        (s.id, d)
        for s in graph.site.services
        for d in s.depends_on
        if s.tier is Tier.LOW and users[d] == [s.id] and not {s.id, d} & lock.protected
    ]
    assert pairs, "the site needs a low-tier service with a dependency of its own"
    return pairs[0]


async def test_a_failed_command_holds_what_needed_it_and_the_rest_goes_on(graph: SiteGraph) -> None:
    dependant, dependency = _low_pair(graph)
    others = [s for s in _low_services(graph, 3) if s not in (dependant, dependency)][:2]
    assert len(others) == 2
    driver = LayerDriver(refuse=dependant)
    journal = MemoryJournal()
    locks = [CriticalClosureInterlock(graph), DependencyOrderInterlock(graph)]
    act = Actuator(Mode.ARMED, journal, lambda a: driver, locks, SimClock(), timeout_s=0.2)  # type: ignore[arg-type]
    layered = [
        Action(kind=ActionKind.SERVICE_SHED, target_id=dependant, decision_id="d", sequence=0),
        Action(kind=ActionKind.SERVICE_SHED, target_id=others[0], decision_id="d", sequence=0),
        Action(kind=ActionKind.SERVICE_SHED, target_id=dependency, decision_id="d", sequence=1),
        Action(kind=ActionKind.SERVICE_SHED, target_id=others[1], decision_id="d", sequence=1),
    ]
    out = await act.execute([_decision(*layered)], InterlockContext(t_s=0.0, power_event=True))
    got = {v.action.target_id: v.phase for v in out}
    assert got[dependant] is Phase.FAILED
    assert got[others[0]] is Phase.ACKED
    assert got[dependency] is Phase.REFUSED  # its dependant still runs: the interlock holds it
    assert got[others[1]] is Phase.ACKED  # the rest of the response went on
    assert dependency not in [t for t, _ in driver.arrived]
    refused = [e for e in journal.entries() if e.target_id == dependency]
    assert [e.phase for e in refused] == [Phase.PLANNED, Phase.REFUSED]
    assert act.next_due_s == 0.0  # the loop decides again on its next tick


class BatchPdu:
    """A batch driver: counts exchanges and the actions each carried."""

    name = "pdu"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def supports(self, kind: ActionKind) -> bool:
        return kind in {ActionKind.OUTLET_OFF, ActionKind.OUTLET_ON}

    async def read(self) -> list[Reading]:
        return []

    async def apply(self, action: Action) -> ActionResult:
        return (await self.apply_many([action]))[0]

    async def apply_many(self, actions: list[Action]) -> list[ActionResult]:
        self.batches.append([a.target_id for a in actions])
        return [ActionResult(command_id=a.command_id, ok=not a.target_id.endswith("x")) for a in actions]

    async def close(self) -> None:
        return None


async def test_actions_a_batch_driver_owns_go_in_batches_with_one_answer_each() -> None:
    pdu, other = BatchPdu(), BatchPdu()
    journal = MemoryJournal()

    def route(a: Action) -> BatchPdu:
        return pdu if a.target_id.startswith("p1") else other

    act = Actuator(Mode.ARMED, journal, route, [], SimClock(), max_batch=3)  # type: ignore[arg-type]
    ids = [f"p1.o{n}" for n in range(5)] + ["p2.o1", "p2.ox"]
    actions = [Action(kind=ActionKind.OUTLET_OFF, target_id=t, decision_id="d") for t in ids]
    out = await act.execute([_decision(*actions)], InterlockContext(0.0))
    assert pdu.batches == [ids[:3], ids[3:5]]  # max_batch per exchange, in order
    assert other.batches == [["p2.o1", "p2.ox"]]
    assert [v.action.target_id for v in out] == ids
    assert [v.phase for v in out] == [Phase.ACKED] * 6 + [Phase.FAILED]
    answered = {e.target_id: e.phase for e in journal.entries() if e.phase in (Phase.ACKED, Phase.FAILED)}
    assert answered == dict(zip(ids, [Phase.ACKED] * 6 + [Phase.FAILED], strict=True))


async def test_one_layer_checks_each_outlet_off_against_those_sent_before_it(graph: SiteGraph) -> None:
    """Both outlets of a server running a critical service, in one layer: the one that would
    darken it is refused, the other goes; an approval waiting meanwhile keeps its own context."""

    class Outlets:
        name = "pdu"

        def __init__(self) -> None:
            self.off: list[str] = []

        def supports(self, kind: ActionKind) -> bool:
            return True

        async def read(self) -> list[Reading]:
            return []

        async def apply(self, action: Action) -> ActionResult:
            self.off.append(action.target_id)
            return ActionResult(command_id=action.command_id, ok=True)

        async def close(self) -> None:
            return None

    lock = CriticalClosureInterlock(graph)
    server = next(
        s
        for s in graph.server_ids
        if len(graph.power_path(s)) > 1
        and any(w.server == s and w.service in lock.protected for w in graph.site.workloads)
    )
    outlets = [path[1] for path in graph.power_path(server)]
    driver = Outlets()
    act = Actuator(
        Mode.ARMED,
        MemoryJournal(),
        lambda a: driver,  # type: ignore[arg-type,return-value]
        [lock],
        SimClock(),
        approval_kinds=frozenset({ActionKind.OUTLET_ON}),
    )
    waiting = Action(kind=ActionKind.OUTLET_ON, target_id="elsewhere-o1")
    offs = [Action(kind=ActionKind.OUTLET_OFF, target_id=o, reason="test") for o in outlets]
    verdicts = await act.execute([_decision(waiting, *offs)], InterlockContext(0.0))
    phases = {v.action.target_id: v.phase for v in verdicts}
    assert [phases[o] for o in outlets[:-1]] == [Phase.ACKED] * (len(outlets) - 1)
    assert phases[outlets[-1]] is Phase.REFUSED
    assert driver.off == outlets[:-1]
    # The pending approval was checked before the outlets went: its context holds none of them.
    ((_, ctx),) = act._pending.values()
    assert not set(outlets) & set(ctx.outlets_off)


async def test_a_layers_answers_are_written_with_the_next_layers_entries_before_it_is_sent(graph: SiteGraph) -> None:
    """One journal write per layer plus one at the end, and every answer is in the journal
    before anything of a later layer leaves (the write costs the same whatever its size)."""

    class CountingJournal(MemoryJournal):
        def __init__(self) -> None:
            super().__init__()
            self.writes = 0

        def append_many(self, entries: Sequence[JournalEntry]) -> None:
            self.writes += 1
            super().append_many(entries)

    driver = LayerDriver()
    journal = CountingJournal()
    act = Actuator(Mode.ARMED, journal, lambda a: driver, [], SimClock())  # type: ignore[arg-type]
    a, b, c = _low_services(graph, 3)
    layered = [
        Action(kind=ActionKind.SERVICE_SHED, target_id=t, decision_id="d", sequence=k) for k, t in enumerate((a, b, c))
    ]
    out = await act.execute([_decision(*layered)], InterlockContext(t_s=0.0, power_event=True))
    assert [v.phase for v in out] == [Phase.ACKED] * 3
    assert journal.writes == 4
    steps = [(e.target_id, e.phase) for e in journal.entries()]
    assert steps.index((a, Phase.ACKED)) < steps.index((b, Phase.SENT))
    assert steps.index((b, Phase.ACKED)) < steps.index((c, Phase.SENT))
    assert steps[-1] == (c, Phase.ACKED)
