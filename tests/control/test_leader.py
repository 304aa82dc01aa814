"""Leader election against a real etcd and a real PostgreSQL: one leader, growing tokens, hand-over."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import need
from control.ha_support import PG_DSN, etcd_server, postgres_available
from wattwise.control.leader import (
    EtcdLeaderElector,
    LeaderElector,
    PostgresLeaderElector,
    keep_campaigning,
    loop_hooks,
)
from wattwise.errors import LeadershipLost

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def etcd_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with etcd_server(tmp_path_factory.mktemp("etcd") / "data") as url:
        yield url


@pytest.fixture(params=["etcd", "postgres"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[LeaderElector, LeaderElector]]:
    domain = f"hall-{uuid.uuid4().hex[:8]}"
    if request.param == "etcd":
        url = request.getfixturevalue("etcd_url")
        a: LeaderElector = EtcdLeaderElector(url, domain, "a", ttl_s=2.0, poll_s=0.05)
        b: LeaderElector = EtcdLeaderElector(url, domain, "b", ttl_s=2.0, poll_s=0.05)
    else:
        need(postgres_available(), "PostgreSQL on 127.0.0.1:5432")
        a = PostgresLeaderElector(PG_DSN, domain, "a", lease_s=1.0, poll_s=0.05)
        b = PostgresLeaderElector(PG_DSN, domain, "b", lease_s=1.0, poll_s=0.05)
    yield a, b
    await a.close()
    await b.close()


async def test_one_leader_and_hand_over_on_resign(pair: tuple[LeaderElector, LeaderElector]) -> None:
    a, b = pair
    assert isinstance(a, LeaderElector)
    assert await a.try_acquire()
    assert not await b.try_acquire()
    assert await a.is_leader() and not await b.is_leader()
    token_a = a.token
    assert token_a is not None and b.token is None
    assert await b.leader() == "a"  # followers can tell who leads
    is_leader, token = loop_hooks(a)
    assert is_leader() and token() == token_a
    await a.resign()
    assert not await a.is_leader() and a.token is None
    assert not is_leader() and token() is None
    assert await b.leader() is None
    t0 = time.monotonic()
    token_b = await b.campaign(timeout_s=5.0)
    assert time.monotonic() - t0 < 1.0, "resign must hand over at once, not after a TTL"
    assert token_b > token_a
    assert not await a.try_acquire()


async def test_keepalive_holds_leadership_past_the_ttl(pair: tuple[LeaderElector, LeaderElector]) -> None:
    a, b = pair
    token = await a.campaign(timeout_s=5.0)
    await asyncio.sleep(2.5)  # longer than either lease (etcd 2 s, PostgreSQL 1 s)
    assert await a.is_leader() and a.token == token
    assert not await b.try_acquire()


async def test_campaign_times_out_while_another_leads(pair: tuple[LeaderElector, LeaderElector]) -> None:
    a, b = pair
    await a.campaign(timeout_s=5.0)
    with pytest.raises(TimeoutError):
        await b.campaign(timeout_s=0.3)


async def test_etcd_leader_stops_acting_when_etcd_is_gone(tmp_path: Path) -> None:
    """Without etcd the lease cannot be renewed: the leader must stop within its TTL."""
    with etcd_server(tmp_path / "etcd") as url:
        a = EtcdLeaderElector(url, "hall-x", "a", ttl_s=2.0, poll_s=0.05)
        await a.campaign(timeout_s=5.0)
        assert await a.leader() == "a"
    t0 = time.monotonic()  # etcd stopped
    while await a.is_leader():  # noqa: ASYNC110 - polling the local lease view is the point
        await asyncio.sleep(0.05)
    assert time.monotonic() - t0 <= 2.1
    with pytest.raises(LeadershipLost):
        await a.ensure_leader()
    await a.close()


async def test_postgres_leader_loses_when_its_session_is_killed() -> None:
    need(postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    import psycopg

    domain = f"hall-{uuid.uuid4().hex[:8]}"
    a = PostgresLeaderElector(PG_DSN, domain, "a", lease_s=0.6, poll_s=0.05)
    b = PostgresLeaderElector(PG_DSN, domain, "b", lease_s=0.6, poll_s=0.05)
    token_a = await a.campaign(timeout_s=5.0)
    async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as admin:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s::int::oid",
            (a.lock_id,),
        )
    token_b = await b.campaign(timeout_s=5.0)
    assert token_b > token_a
    await asyncio.sleep(0.8)  # a's keepalive notices the dead session
    assert not await a.is_leader()
    await a.close()
    await b.close()


async def test_cli_names_the_leader(etcd_url: str) -> None:
    from typer.testing import CliRunner

    from wattwise.cli import app

    domain = f"hall-{uuid.uuid4().hex[:8]}"
    a = EtcdLeaderElector(etcd_url, domain, "ctl-a", ttl_s=2.0)
    await a.campaign(timeout_s=5.0)
    runner = CliRunner()
    out = await asyncio.to_thread(runner.invoke, app, ["leader", domain, "hall-none", "--etcd", etcd_url])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == [f"{domain}: ctl-a", "hall-none: no leader"]
    await a.close()
    gone = await asyncio.to_thread(runner.invoke, app, ["leader", domain, "--etcd", "http://127.0.0.1:9"])
    assert gone.exit_code == 2


async def test_actuator_of_a_deposed_leader_is_fenced(etcd_url: str) -> None:
    """Elector + the lead's Actuator + FencedDriver: the old leader's command fails as 'fenced'."""
    from wattwise.act.actuator import Actuator
    from wattwise.act.base import MemoryJournal, Mode, Phase
    from wattwise.act.interlocks import InterlockContext
    from wattwise.control.fencing import FencedDriver, FencingGate
    from wattwise.model.clock import WallClock
    from wattwise.model.values import Action, ActionKind, ActionResult, Decision, DecisionStatus, Reading

    class Outlets:
        name = "outlets"

        def __init__(self) -> None:
            self.applied: list[tuple[str, int | None]] = []

        def supports(self, kind: ActionKind) -> bool:
            return kind is ActionKind.OUTLET_OFF

        async def read(self) -> list[Reading]:
            return []

        async def apply(self, action: Action) -> ActionResult:
            self.applied.append((action.target_id, action.fencing_token))
            return ActionResult(command_id=action.command_id, ok=True)

        async def close(self) -> None:
            return None

    domain = f"hall-{uuid.uuid4().hex[:8]}"
    a = EtcdLeaderElector(etcd_url, domain, "a", ttl_s=2.0, poll_s=0.05)
    b = EtcdLeaderElector(etcd_url, domain, "b", ttl_s=2.0, poll_s=0.05)
    outlets = Outlets()
    fenced = FencedDriver(outlets, FencingGate(), domain=domain)
    token_a = await a.campaign(timeout_s=5.0)
    journal_a, journal_b = MemoryJournal(), MemoryJournal()
    stale_token = token_a  # what a paused leader still believes

    def actuator(journal: MemoryJournal, token: Any) -> Actuator:
        return Actuator(Mode.ARMED, journal, lambda _a: fenced, [], WallClock(), token=token)

    def shed(target: str) -> list[Decision]:
        act = Action(kind=ActionKind.OUTLET_OFF, target_id=target, decision_id=target, reason="test")
        return [Decision(policy_name="t", status=DecisionStatus.OK, actions=(act,))]

    ctx = InterlockContext(t_s=0.0)
    old = actuator(journal_a, lambda: stale_token)
    assert [v.phase for v in await old.execute(shed("o1"), ctx)] == [Phase.ACKED]
    await a.resign()
    _, token_b_hook = loop_hooks(b)
    token_b = await b.campaign(timeout_s=5.0)
    new = actuator(journal_b, token_b_hook)
    assert [v.phase for v in await new.execute(shed("o2"), ctx)] == [Phase.ACKED]
    (verdict,) = await old.execute(shed("o3"), ctx)
    assert verdict.phase is Phase.FAILED and verdict.message == f"fenced: token {token_a} < {token_b}"
    assert outlets.applied == [("o1", token_a), ("o2", token_b)]
    assert [e.phase for e in journal_a.entries() if e.target_id == "o3"][-1] is Phase.FAILED
    await a.close()
    await b.close()


async def test_keep_campaigning_hands_over_when_the_leader_stops(
    pair: tuple[LeaderElector, LeaderElector],
) -> None:
    a, b = pair
    task_a = asyncio.create_task(keep_campaigning(a, poll_s=0.05))
    await asyncio.sleep(0.5)
    task_b = asyncio.create_task(keep_campaigning(b, poll_s=0.05))
    await asyncio.sleep(0.5)
    assert await a.is_leader() and not await b.is_leader()
    task_a.cancel()  # the controller shuts down: it resigns, b takes over at once
    with pytest.raises(asyncio.CancelledError):
        await task_a
    t0 = time.monotonic()
    while not await b.is_leader():  # noqa: ASYNC110 - polling the local lease view is the point
        await asyncio.sleep(0.02)
    assert time.monotonic() - t0 < 1.0
    assert (b.token or 0) > 0
    task_b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task_b
    assert not await b.is_leader()
