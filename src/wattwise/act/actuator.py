"""The actuator: turns a decision into journaled, interlocked, idempotent commands.

Every action is journaled ``planned`` before anything else. In ``observe`` mode nothing more
happens; in ``dry-run`` it is journaled as what would be sent; in ``armed`` it is journaled
``sent`` before it leaves and ``acked``/``failed`` after. Interlocks may refuse it; kinds that
need manual approval wait as ``pending`` until an operator approves or denies them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar, cast

from wattwise.act.base import Journal, JournalEntry, Mode, Phase
from wattwise.act.interlocks import Interlock, InterlockContext
from wattwise.drivers.base import BatchDriver, Driver
from wattwise.errors import WattwiseError
from wattwise.model.clock import Clock
from wattwise.model.values import Action, ActionKind, ActionResult, Decision

logger = logging.getLogger(__name__)

Router = Callable[[Action], Driver | None]
T = TypeVar("T")

_GOES = frozenset({Phase.SENT, Phase.DRY_RUN, Phase.PLANNED})
"""Verdicts whose action later actions of the same execute are checked as done (dry-run and
observe journal what armed would do, so they assume what armed would send goes through)."""
_CONFIRMED = frozenset({Phase.ACKED, Phase.DRY_RUN, Phase.PLANNED})


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the actuator would do (or did) with one action."""

    action: Action
    phase: Phase
    message: str = ""


class _Sent:
    """The context later actions of one layer are checked in, updated in place as each is sent.

    One layer can hold thousands of outlet-offs; a frozen context rebuilt after each of them
    copied the whole off-set every time (quadratic: seconds at 10 000 servers).
    """

    def __init__(self, ctx: InterlockContext) -> None:
        self.outlets_off = set(ctx.outlets_off)
        self.services_down = set(ctx.services_down)
        self.shed_this_tick = set(ctx.shed_this_tick)
        self.ctx = replace(
            ctx, outlets_off=self.outlets_off, services_down=self.services_down, shed_this_tick=self.shed_this_tick
        )

    def add(self, action: Action) -> None:
        """``action`` is sent: what it takes down counts as down for the actions after it."""
        if action.kind is ActionKind.SERVICE_SHED:
            self.services_down.add(action.target_id)
            self.shed_this_tick.add(action.target_id)
        elif action.kind is ActionKind.SERVICE_RESTORE:
            self.services_down.discard(action.target_id)
        elif action.kind is ActionKind.OUTLET_OFF:
            self.outlets_off.add(action.target_id)
        elif action.kind is ActionKind.OUTLET_ON:
            self.outlets_off.discard(action.target_id)

    def frozen(self) -> InterlockContext:
        """The context as it stands now, immune to later sends."""
        return replace(
            self.ctx,
            outlets_off=frozenset(self.outlets_off),
            services_down=frozenset(self.services_down),
            shed_this_tick=frozenset(self.shed_this_tick),
        )


def _undo(ctx: InterlockContext, failed: Sequence[Action]) -> InterlockContext:
    """The context as if the failed actions had never been sent."""
    shed = {a.target_id for a in failed if a.kind is ActionKind.SERVICE_SHED}
    restored = {a.target_id for a in failed if a.kind is ActionKind.SERVICE_RESTORE}
    off = {a.target_id for a in failed if a.kind is ActionKind.OUTLET_OFF}
    on = {a.target_id for a in failed if a.kind is ActionKind.OUTLET_ON}
    return replace(
        ctx,
        services_down=(ctx.services_down - shed) | restored,
        shed_this_tick=ctx.shed_this_tick - shed,
        outlets_off=(ctx.outlets_off - off) | on,
    )


class Actuator:
    """Executes decisions safely.

    Args:
        mode: Observe, dry-run or armed.
        journal: Where every step is written before and after sending.
        router: Finds the driver for an action (``None``: no driver can do it).
        interlocks: Checked in order; the first refusal wins.
        clock: Time source.
        approval_kinds: Kinds that wait for an operator.
        token: Returns the current fencing token (``None`` when running without HA).
        timeout_s: Per-command time limit.
        max_in_flight: Most exchanges (commands, or batches to a batch driver) in flight at once.
        max_batch: Most actions in one batch to a :class:`BatchDriver`.
    """

    def __init__(
        self,
        mode: Mode,
        journal: Journal,
        router: Router,
        interlocks: Sequence[Interlock],
        clock: Clock,
        approval_kinds: frozenset[ActionKind] = frozenset(),
        token: Callable[[], int | None] = lambda: None,
        timeout_s: float = 5.0,
        max_in_flight: int = 64,
        max_batch: int = 48,
    ) -> None:
        self.mode = mode
        self.journal = journal
        self.router = router
        self.interlocks = tuple(interlocks)
        self.clock = clock
        self.approval_kinds = approval_kinds
        self.token = token
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self._done: set[str] = set()
        self._state: dict[str, tuple[ActionKind, float | None, str | None]] = {}
        self._pending: dict[str, tuple[Action, InterlockContext]] = {}
        self._schedule: dict[tuple[ActionKind, str, float | None, str | None], float] = {}
        self.next_due_s = float("inf")
        """When the earliest action held for later by the last ``execute`` falls due (``inf``: none)."""

    # ---- planning (pure with respect to devices) -----------------------------------------
    def _is_noop(self, action: Action) -> bool:
        if action.command_id in self._done:
            return True
        return self._state.get(action.target_id) == (action.kind, action.value, action.dest_id)

    def verdict(self, action: Action, ctx: InterlockContext) -> Verdict:
        """What would happen to one action now (no side effects)."""
        if self._is_noop(action):
            return Verdict(action, Phase.ACKED, "already in that state")
        for lock in self.interlocks:
            reason = lock.check(action, ctx)
            if reason is not None:
                return Verdict(action, Phase.REFUSED, reason)
        if action.kind in self.approval_kinds:
            return Verdict(action, Phase.PENDING, "waits for operator approval")
        return Verdict(action, Phase.SENT)

    def plan(self, decisions: Sequence[Decision], ctx: InterlockContext) -> list[Verdict]:
        """Exactly what ``armed`` would do with these decisions, in time and sequence order (``wattwise plan``).

        Actions scheduled for later keep their ``not_before_s``; nothing is sent or recorded.
        """
        actions = enumerate(a for d in decisions for a in d.actions)
        order = sorted(actions, key=lambda q: (q[1].not_before_s, q[1].sequence, q[0]))
        verdicts = (self.verdict(a, ctx) for _, a in order)
        return [v for v in verdicts if v.phase is not Phase.ACKED]

    # ---- execution ------------------------------------------------------------------------
    async def execute(self, decisions: Sequence[Decision], ctx: InterlockContext) -> list[Verdict]:
        """Journal and (when armed) send every due action of the decisions, in time and sequence order.

        Actions with ``not_before_s`` in the future (staggered restores) are held; a re-plan
        that asks for the same intent keeps the earliest time already given, so stateless
        policies re-planning every tick still progress through a sequence. The actions due now
        go out one ``Action.sequence`` at a time: every action of a sequence is journaled
        ``planned`` (and ``sent``) before any of its commands leaves, its commands are sent
        concurrently (bounded) and answered, and the next sequence follows at once, so a
        layered shed takes the round trips it needs and no fixed delay. A command that fails
        is taken back out of the context the later sequences are checked in (the interlocks
        then refuse what depended on it), and the next tick decides again (``next_due_s`` is
        set to now).
        """
        now_s = self.clock.now_s()
        token = self.token()
        restores = (a.target_id for d in decisions for a in d.actions if a.kind is ActionKind.SERVICE_RESTORE)
        ctx = replace(ctx, restores_planned=frozenset(restores))
        # The actuator does the waiting: what it sends is due now (a device never re-schedules it).
        schedule = self._schedule_of(decisions)
        self.next_due_s = min((due_s for due_s, _, _ in schedule if due_s > now_s), default=float("inf"))
        layers: dict[int, list[Action]] = {}
        for due_s, _, raw in schedule:
            if due_s <= now_s:
                layers.setdefault(raw.sequence, []).append(
                    raw.model_copy(update={"fencing_token": token, "not_before_s": due_s})
                )
        out: list[Verdict] = []
        # Each layer's answers are journaled with the next layer's planned and sent entries, in
        # one write (a journal write costs ~10-25 ms whatever its size), still before any of
        # the next layer's commands leaves; the last layer's answers are written at the end.
        answered: list[JournalEntry] = []
        try:
            for sequence in sorted(layers):
                verdicts, ctx = await self._execute_layer(layers[sequence], ctx, now_s, answered)
                out += verdicts
                failed = [v.action for v in verdicts if v.phase is Phase.FAILED]
                if failed:
                    # The later layers are checked as if the failed commands had not been sent,
                    # so the interlocks refuse exactly what needed them (a dependency's shed
                    # while its dependant still runs, a host's outlets while its services run)
                    # and the rest of the response goes on; the next tick decides again.
                    self.next_due_s = now_s
                    ctx = _undo(ctx, failed)
        finally:
            self.journal.append_many(answered)
        return out

    async def _execute_layer(
        self, due: Sequence[Action], ctx: InterlockContext, now_s: float, answered: list[JournalEntry]
    ) -> tuple[list[Verdict], InterlockContext]:
        """Check, journal and send one layer.

        ``answered`` brings the journal entries of earlier answers not yet written (written
        here, with this layer's, before it is sent) and takes this layer's answers back.
        """
        before: list[JournalEntry] = [*answered]
        answered.clear()
        out: list[Verdict] = []
        to_send: list[Action] = []
        sent = _Sent(ctx)
        for raw in due:
            v = self.verdict(raw, sent.ctx)
            if v.phase is Phase.ACKED:
                continue
            before.append(JournalEntry.of(v.action, Phase.PLANNED, now_s))
            out.append(self._before_send(v, sent, before, now_s))
            if out[-1].phase is Phase.SENT:
                to_send.append(v.action)
            if out[-1].phase in _GOES:
                sent.add(v.action)
        ctx = sent.frozen()
        self.journal.append_many(before)
        replies = await self._send_many(to_send, ctx)
        answered += [entry for _, entry in replies]
        answers = iter(verdict for verdict, _ in replies)
        verdicts = [next(answers) if v.phase is Phase.SENT else v for v in out]
        # A shed acknowledged (or, in dry-run and observe, taken as acknowledged) is confirmed
        # for the later sequences: its hosts' outlets may go off in the same execute.
        confirmed = {v.action.target_id for v in verdicts if v.phase in _CONFIRMED}
        return verdicts, replace(ctx, shed_this_tick=ctx.shed_this_tick - confirmed)

    def _before_send(self, verdict: Verdict, sent: _Sent, before: list[JournalEntry], now_s: float) -> Verdict:
        action = verdict.action
        if verdict.phase is Phase.REFUSED:
            logger.warning("refused %s on %s: %s", action.kind, action.target_id, verdict.message)
            before.append(JournalEntry.of(action, Phase.REFUSED, now_s, verdict.message))
            return verdict
        if self.mode is Mode.OBSERVE:
            return Verdict(action, Phase.PLANNED, "observe mode")
        if self.mode is Mode.DRY_RUN:
            before.append(JournalEntry.of(action, Phase.DRY_RUN, now_s))
            return Verdict(action, Phase.DRY_RUN)
        if verdict.phase is Phase.PENDING:
            if action.command_id not in self._pending:
                self._pending[action.command_id] = (action, sent.frozen())
                before.append(JournalEntry.of(action, Phase.PENDING, now_s, verdict.message))
            return verdict
        before.append(JournalEntry.of(action, Phase.SENT, now_s))
        return Verdict(action, Phase.SENT)

    async def _send_many(self, actions: Sequence[Action], ctx: InterlockContext) -> list[tuple[Verdict, JournalEntry]]:
        """Send ``actions`` concurrently (at most ``max_in_flight`` exchanges).

        Returns the verdicts with the journal entries of the answers (for the caller to
        write), in order.

        Actions owned by a :class:`BatchDriver` go to it together, ``max_batch`` at a time (one
        SNMP SET carries a PDU's outlets), each batch under the same time limit as one command.
        """
        gate = asyncio.Semaphore(self.max_in_flight)
        batches: dict[int, tuple[BatchDriver, list[int]]] = {}
        singles: list[int] = []
        batching: dict[int, bool] = {}  # a runtime protocol check is slow; once per driver
        for i, action in enumerate(actions):
            driver = self.router(action)
            if id(driver) not in batching:
                batching[id(driver)] = isinstance(driver, BatchDriver)
            if batching[id(driver)]:
                batches.setdefault(id(driver), (cast(BatchDriver, driver), []))[1].append(i)
            else:
                singles.append(i)

        async def one(i: int) -> list[tuple[int, Verdict, JournalEntry]]:
            async with gate:
                verdict, entry = await self._deliver(actions[i], ctx, "controller")
            return [(i, verdict, entry)]

        async def many(driver: BatchDriver, idx: list[int]) -> list[tuple[int, Verdict, JournalEntry]]:
            async with gate:
                answers = await self._deliver_many(driver, [actions[i] for i in idx], ctx, "controller")
            return [(i, v, e) for i, (v, e) in zip(idx, answers, strict=True)]

        jobs = [one(i) for i in singles]
        for batch, idx in batches.values():
            jobs += [many(batch, idx[k : k + self.max_batch]) for k in range(0, len(idx), self.max_batch)]
        results = sorted((r for rs in await asyncio.gather(*jobs) for r in rs), key=lambda r: r[0])
        return [(verdict, entry) for _, verdict, entry in results]

    def _schedule_of(self, decisions: Sequence[Decision]) -> list[tuple[float, int, Action]]:
        schedule: dict[tuple[ActionKind, str, float | None, str | None], float] = {}
        queue: list[tuple[float, int, Action]] = []
        for seq, action in enumerate(a for d in decisions for a in d.actions):
            key = (action.kind, action.target_id, action.value, action.dest_id)
            due_s = min(self._schedule.get(key, action.not_before_s), action.not_before_s)
            schedule[key] = due_s
            queue.append((due_s, seq, action))
        self._schedule = schedule
        return sorted(queue, key=lambda q: (q[0], q[1]))

    async def _bounded(self, call: Awaitable[T]) -> T | str:
        """The call's result within ``timeout_s``, or why it failed (a timeout or a driver error)."""
        try:
            return await asyncio.wait_for(call, timeout=self.timeout_s)
        except TimeoutError:
            return f"timed out after {self.timeout_s:.1f} s"
        except WattwiseError as err:
            return f"{type(err).__name__}: {err}"

    def _failed(self, action: Action, msg: str, actor: str, now_s: float) -> tuple[Verdict, JournalEntry]:
        return Verdict(action, Phase.FAILED, msg), JournalEntry.of(action, Phase.FAILED, now_s, msg, actor)

    async def _deliver(self, action: Action, ctx: InterlockContext, actor: str) -> tuple[Verdict, JournalEntry]:
        """Apply one action through its driver; the verdict and the journal entry of the answer."""
        driver = self.router(action)
        if driver is None:
            return self._failed(
                action, f"no driver can apply {action.kind} to {action.target_id}", actor, self.clock.now_s()
            )
        result = await self._bounded(driver.apply(action))
        if not isinstance(result, str):
            return self._answered(action, result, ctx, actor)
        logger.warning("failed %s on %s: %s", action.kind, action.target_id, result)
        return self._failed(action, result, actor, self.clock.now_s())

    async def _deliver_many(
        self, driver: BatchDriver, actions: Sequence[Action], ctx: InterlockContext, actor: str
    ) -> list[tuple[Verdict, JournalEntry]]:
        """Apply several actions through one batch driver; a verdict and journal entry each."""
        results = await self._bounded(driver.apply_many(actions))
        if not isinstance(results, str):
            return [self._answered(a, r, ctx, actor) for a, r in zip(actions, results, strict=True)]
        logger.warning("failed %d action(s) via %s: %s", len(actions), getattr(driver, "name", "?"), results)
        now_s = self.clock.now_s()
        return [self._failed(a, results, actor, now_s) for a in actions]

    def _answered(
        self, action: Action, result: ActionResult, ctx: InterlockContext, actor: str
    ) -> tuple[Verdict, JournalEntry]:
        """Record a device's answer: state, interlocks and the journal entry."""
        phase = Phase.ACKED if result.ok else Phase.FAILED
        if result.ok:
            self._done.add(action.command_id)
            self._state[action.target_id] = (action.kind, action.value, action.dest_id)
            for lock in self.interlocks:
                lock.record(action, ctx)
            logger.info("acked %s on %s: %s", action.kind, action.target_id, action.reason)
        entry = JournalEntry.of(action, phase, self.clock.now_s(), result.message, actor)
        return Verdict(action, phase, result.message), entry

    async def _send(self, action: Action, ctx: InterlockContext, actor: str) -> Verdict:
        self.journal.append(JournalEntry.of(action, Phase.SENT, self.clock.now_s(), actor=actor))
        verdict, entry = await self._deliver(action, ctx, actor)
        self.journal.append(entry)
        return verdict

    # ---- operators ------------------------------------------------------------------------
    @property
    def pending(self) -> list[Action]:
        """Actions waiting for approval."""
        return [a for a, _ in self._pending.values()]

    async def approve(self, command_id: str, actor: str) -> Verdict:
        """Send a pending action on an operator's word (interlocks are checked again)."""
        action, ctx = self._pending.pop(command_id)
        self.journal.append(JournalEntry.of(action, Phase.APPROVED, self.clock.now_s(), actor=actor))
        for lock in self.interlocks:
            reason = lock.check(action, ctx)
            if reason is not None:
                self.journal.append(JournalEntry.of(action, Phase.REFUSED, self.clock.now_s(), reason, actor))
                return Verdict(action, Phase.REFUSED, reason)
        return await self._send(action, ctx, actor)

    def deny(self, command_id: str, actor: str) -> Verdict:
        """Drop a pending action on an operator's word."""
        action, _ = self._pending.pop(command_id)
        self.journal.append(JournalEntry.of(action, Phase.DENIED, self.clock.now_s(), actor=actor))
        return Verdict(action, Phase.DENIED)

    def switched_off(self) -> frozenset[str]:
        """Targets whose last acknowledged command took them down (a service shed, an outlet off).

        Their reading unavailable is the command's effect, not a power event.
        """
        down = (ActionKind.SERVICE_SHED, ActionKind.OUTLET_OFF)
        return frozenset(t for t, (kind, _, _) in self._state.items() if kind in down)

    def forget_state(self, target_id: str) -> None:
        """Forget the last known state of a target (after a device reports a change)."""
        self._state.pop(target_id, None)
