"""LiveBackend over a real controller and twin: a feed loss shows up in every view, through HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from tests.api.conftest import DEMO_SITE, bearer
from tests.conftest import free_port

from wattwise.act.base import Mode
from wattwise.api.app import create_app
from wattwise.api.auth import TokenStore
from wattwise.api.limits import ApiLimits
from wattwise.api.live_backend import LiveBackend
from wattwise.api.schemas import ActionState, Actor, Event, Role
from wattwise.api.server import ServerThread
from wattwise.config import Settings
from wattwise.control.assemble import assemble, default_policies
from wattwise.decide.load_sharing import CurveLoadSharingPolicy
from wattwise.errors import ActuationRefused
from wattwise.model.clock import SimClock
from wattwise.model.loader import load_site
from wattwise.model.site import Site
from wattwise.model.values import ActionKind
from wattwise.sim.driver import TwinDriver
from wattwise.sim.faults import inject
from wattwise.sim.scenario import FeedLoss
from wattwise.sim.twin import Twin
from wattwise.store.duckdb_store import DuckDBStore

START_S = 1_700_000_000.0


@dataclass
class Rig:
    """A controller on a twin, its clock and the backend over it."""

    backend: LiveBackend
    twin: Twin
    clock: SimClock
    loop: asyncio.AbstractEventLoop

    def tick(self, n: int = 1, dt_s: float = 1.0) -> None:
        """Advance the clock and run ``n`` controller ticks on the rig's own loop."""
        for _ in range(n):
            self.clock.advance_s(dt_s)
            self.loop.run_until_complete(self.backend.assembly.controller.tick())


def make_live(site: Site, mode: Mode = Mode.ARMED) -> tuple[LiveBackend, Twin, SimClock]:
    """A LiveBackend over a fresh twin and an in-memory store (no tick run yet)."""
    clock = SimClock(START_S)
    twin = Twin(site, seed=1, start_s=START_S, record_timeline=False)
    store = DuckDBStore(":memory:")
    assembly = assemble(site, [TwinDriver(twin, clock=clock)], store, clock, mode, poll_period_s=1.0)
    return LiveBackend(assembly, store, clock), twin, clock


@pytest.fixture
def rig() -> Iterator[Rig]:
    backend, twin, clock = make_live(load_site(DEMO_SITE))
    loop = asyncio.new_event_loop()
    try:
        yield Rig(backend, twin, clock, loop)
    finally:
        loop.close()


def test_views_follow_telemetry(rig: Rig) -> None:
    rig.tick(3)
    run = rig.loop.run_until_complete
    head = run(rig.backend.headroom(4))
    assert head.source == "telemetry"
    utility = next(n for n in head.nodes if n.id == "utility-a")
    measured = rig.backend.assembly.controller.latest.get("utility-a", "power_w")
    assert measured is not None and utility.load_w == pytest.approx(measured) and measured > 0
    # Each phase has its own metric, so all three survive the (device, metric) table (issue 5).
    assert any(p.load_w > 0 for p in head.phases)
    voltage_v = {pdu.id: pdu.voltage_v for pdu in rig.backend.site_model.pdus}
    latest = rig.backend.assembly.controller.latest
    for p in head.phases:
        current_a = latest.get(p.pdu_id, f"current_l{p.phase}_a")
        assert current_a is not None and p.load_w == pytest.approx(current_a * voltage_v[p.pdu_id]), p
    ups = run(rig.backend.ups())
    assert all(u.on_battery is False and u.battery_charge_frac is not None for u in ups)
    page = run(rig.backend.devices("server", 0, 2))
    assert page.total == 16 and {r.metric for r in page.items[0].readings} >= {"power_w", "cpu_frac"}
    hist = run(rig.backend.history("utility-a", "power_w", START_S, START_S + 4.0, 10))
    assert hist.raw_points == 3 and all(p.min <= p.mean <= p.max for p in hist.points)
    fc = run(rig.backend.forecasts())
    assert fc.items and "recent peak + 5 %" in fc.note
    assert all(p.upper >= p.mean for f in fc.items for p in f.points)
    status = run(rig.backend.status())
    assert status.running and status.mode == "armed" and status.leader == "self"
    assert status.staleness_s is not None and status.staleness_s <= 1.0
    assert status.rejected_readings == ()  # no duplicate (device, metric, t_s) among the twin's readings


def test_degraded_psu_is_at_risk(rig: Rig) -> None:
    rig.tick(1)
    psu = rig.twin.ids["psu"][0]
    i = rig.twin.index["psu"][psu]
    rig.twin.psu.degradation_frac[i] = 0.6  # ripple 0.04 + 0.6 × 0.36 ≈ 0.26 V
    rig.tick(1)
    risks = rig.loop.run_until_complete(rig.backend.predictions()).items
    assert risks and risks[0].device_id == psu and risks[0].kind == "psu"


def test_what_if_runs_the_policies_and_changes_nothing(rig: Rig) -> None:
    rig.tick(2)
    op = Actor(name="op", role=Role.OPERATOR)
    before = rig.backend.assembly.actuator.mode
    result = rig.loop.run_until_complete(rig.backend.what_if(("utility-a", "generator-a"), op))
    assert "wattwise would" in result.summary and result.decision is not None
    assert any(n.id == "ups-h1-a" for n in result.nodes) and result.servers_unpowered == 0
    assert rig.backend.assembly.controller.latest.get("utility-a", "source_available") == 1.0
    assert rig.backend.assembly.actuator.mode is before


def test_feed_loss_through_the_api(rig: Rig) -> None:
    rig.tick(3)
    tokens = TokenStore()
    token, _ = tokens.issue("ops", Role.OPERATOR)
    app = create_app(rig.backend, Settings(), tokens, limits=ApiLimits(rate_per_s=1000.0, burst=1000))
    with ServerThread(app, port=free_port()) as server, httpx.Client(base_url=server.url, headers=bearer(token)) as c:
        journal_before = c.get("/api/v1/journal", params={"limit": 5}).json()["total"]
        inject(rig.twin, FeedLoss(at_s=0.0, kind="feed_loss", target="utility-a", duration_s=600.0))
        rig.tick(1)
        status = c.get("/api/v1/status").json()
        assert status["mode"] == "armed" and "last event: utility-a: source lost" in status["message"]
        rig.tick(20)  # the generator starts after ~12 s and the ATS transfers
        head = c.get("/api/v1/headroom", params={"max_pdus": 2}).json()
        load = {n["id"]: n["load_w"] for n in head["nodes"]}
        assert load["utility-a"] == 0.0 and load["generator-a"] > 0.0
        plan = c.get("/api/v1/plan").json()
        assert plan["decisions"] and plan["t_s"] >= START_S + 4
        journal = c.get("/api/v1/journal", params={"limit": 500}).json()
        assert journal["total"] > journal_before
        events = [e for e in journal["items"] if e["kind"] == "event"]
        assert any(e["detail"] == "utility-a: source lost" for e in events)
        assert all(e["actor"] == "controller" for e in events)
        r = c.post("/api/v1/mode", json={"mode": "dry-run", "note": "test"})
        assert r.status_code == 200 and r.json()["mode"] == "dry-run"
        assert rig.backend.assembly.actuator.mode is Mode.DRY_RUN
        top = c.get("/api/v1/journal", params={"limit": 1}).json()["items"][0]
        assert (top["kind"], top["actor"], top["role"]) == ("mode", "ops", "operator")


def test_operator_approval_runs_on_the_controller_loop() -> None:
    site = load_site(DEMO_SITE)
    clock = SimClock(START_S)
    twin = Twin(site, seed=1, start_s=START_S, record_timeline=False)
    store = DuckDBStore(":memory:")
    assembly = assemble(
        site, [TwinDriver(twin, clock=clock)], store, clock, Mode.ARMED,
        approval_kinds=frozenset({ActionKind.PSU_SETPOINT}),
        policies=[*default_policies(), CurveLoadSharingPolicy()],  # load sharing is opt-in (ADR 0003)
    )  # fmt: skip
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        backend = LiveBackend(assembly, store, clock, controller_loop=loop)
        for _ in range(2):
            clock.advance_s(1.0)
            asyncio.run_coroutine_threadsafe(assembly.controller.tick(), loop).result(30.0)
        pending = [a.command_id for a in assembly.actuator.pending]
        assert len(pending) >= 2, "load sharing proposed no set-points to approve"
        plan = asyncio.run(backend.plan())
        assert {a.command_id for a in plan.actions if a.state is ActionState.PENDING} == set(pending)
        op = Actor(name="op", role=Role.OPERATOR)
        done = asyncio.run(backend.decide_action(pending[0], True, op, "go"))
        assert done.state is ActionState.EXECUTED and done.decided_by == "op"
        denied = asyncio.run(backend.decide_action(pending[1], False, op, "no"))
        assert denied.state is ActionState.DENIED
        with pytest.raises(ActuationRefused):
            asyncio.run(backend.decide_action(pending[0], True, op, "again"))
        with pytest.raises(KeyError):
            asyncio.run(backend.decide_action("no-such-command", True, op, ""))
        page = asyncio.run(backend.journal(20, None))
        mine = {(e.kind, e.command_id) for e in page.items if e.actor == "op" and e.role == "operator"}
        assert {("approved psu_setpoint", pending[0]), ("acked psu_setpoint", pending[0])} <= mine
        assert ("denied psu_setpoint", pending[1]) in mine
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)
        loop.close()


def test_each_tick_pushes_a_live_event(rig: Rig) -> None:
    async def first_event() -> Event:
        await rig.backend.start()
        stream = rig.backend.events()
        nxt = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        rig.clock.advance_s(1.0)
        await rig.backend.assembly.controller.tick()
        try:
            return await asyncio.wait_for(nxt, 2.0)
        finally:
            await rig.backend.stop()

    event = rig.loop.run_until_complete(first_event())
    assert event.kind == "headroom" and event.t_s == START_S + 1.0
