"""StaticBackend, what-if physics, down-sampling, token store, and the live SSE stream."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.api.conftest import DEMO_SITE, Live, bearer
from tests.conftest import EXAMPLES

from wattwise.api.auth import TokenStore, Verdict
from wattwise.api.backend_state import downsample
from wattwise.api.schemas import Actor, Role
from wattwise.api.static_backend import StaticBackend
from wattwise.api.whatif import lose
from wattwise.errors import ActuationRefused, ConfigError
from wattwise.model.clock import SimClock
from wattwise.model.graph import SiteGraph
from wattwise.model.loader import load_site
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus

SITE = load_site(DEMO_SITE)
OPS = Actor(name="olga", role=Role.OPERATOR)


def _nominal(graph: SiteGraph) -> np.ndarray:
    return graph.equal_share_psu_input_w(graph.server_idle_w + 0.5 * (graph.server_peak_w - graph.server_idle_w))


def test_losing_a_utility_feed_transfers_its_ats_to_the_generator() -> None:
    g = SiteGraph(SITE)
    psu_w = _nominal(g)
    before = g.chain_loads(psu_w)
    out = lose(g, psu_w, frozenset({"utility-a"}))
    assert out.ats_source == {"ats-h1-a": "generator-a"}
    assert out.loads.of("utility-a")[0] == 0.0
    assert out.loads.of("generator-a")[0] == pytest.approx(before.of("utility-a")[0])
    assert out.servers_unpowered == 0 and not out.ups_bridge_s


def test_losing_side_a_moves_everything_to_side_b_after_the_battery() -> None:
    g = SiteGraph(SITE)
    psu_w = _nominal(g)
    before = g.chain_loads(psu_w)
    out = lose(g, psu_w, frozenset({"utility-a", "generator-a"}))
    total_w = before.of("utility-a")[0] + before.of("utility-b")[0]
    assert out.loads.of("utility-b")[0] == pytest.approx(total_w)
    assert out.loads.of("ups-h1-a")[0] == 0.0 and out.servers_unpowered == 0
    ups = next(u for u in SITE.ups if u.id == "ups-h1-a")
    expected_s = ups.battery_wh * ups.state_of_health_frac * 3600.0 / before.of("ups-h1-a")[0]
    assert out.ups_bridge_s == {"ups-h1-a": pytest.approx(expected_s)}
    both = lose(g, psu_w, frozenset({"utility-a", "generator-a", "utility-b", "generator-b"}))
    assert both.servers_unpowered == len(SITE.servers)
    assert float(both.loads.load_w.sum()) == 0.0


def test_racklet_rectifiers_reshare_when_a_pdu_is_lost() -> None:
    site = load_site(EXAMPLES / "racklet-pod.yaml")
    g = SiteGraph(site)
    psu_w = _nominal(g)
    pdu = site.pdus[0].id
    out = lose(g, psu_w, frozenset({pdu}))
    assert out.loads.of(pdu)[0] == 0.0
    # total demand is conserved: every bus still has a live rectifier
    assert out.servers_unpowered == 0
    before = g.chain_loads(psu_w)
    feeds = [f.id for f in site.feeds]
    assert sum(out.loads.of(f)[0] for f in feeds) == pytest.approx(sum(before.of(f)[0] for f in feeds))
    with pytest.raises(KeyError, match="not a feed"):
        lose(g, psu_w, frozenset({"no-such-device"}))


def test_downsample_buckets_mean_min_max() -> None:
    t = np.arange(1000, dtype=np.float64)
    v = np.sin(t / 50.0) * 100 + 500
    h = downsample("d", "power_w", t, v, None, None, 10)
    assert len(h.points) == 10 and sum(p.n for p in h.points) == 1000 and h.raw_points == 1000
    first = v[t < 99.9]
    assert h.points[0].mean == pytest.approx(first.mean()) and h.points[0].max == pytest.approx(first.max())
    window = downsample("d", "power_w", t, v, 100.0, 199.0, 500)
    assert window.raw_points == 100 and len(window.points) == 100
    assert downsample("d", "power_w", t, v, 500.0, 100.0, 10).points == ()


async def test_static_backend_history_and_states() -> None:
    clock = SimClock(1_000.0)
    b = StaticBackend(SITE, clock=clock, animate=True, tick_s=1.0, period_s=10.0)
    for _ in range(30):
        clock.advance_s(1.0)
        await b.headroom(10)
    h = await b.history("utility-a", "power_w", None, None, 5)
    assert h.raw_points == 31 and len(h.points) == 5
    assert max(p.max for p in h.points) > min(p.min for p in h.points)  # the animated load moves
    none = await b.history("r00001-s1", "power_w", None, None, 5)
    assert none.points == ()
    with pytest.raises(KeyError):
        await b.history("nope", "power_w", None, None, 5)
    assert (await b.forecasts()).note.startswith("no forecasts yet")
    assert (await b.plan()).note.startswith("no plan yet")
    st = await b.status()
    assert not st.running and st.staleness_s is None and st.mode == "observe"


async def test_static_backend_actions_and_journal() -> None:
    b = StaticBackend(SITE, clock=SimClock(50.0))
    action = Action(kind=ActionKind.OUTLET_OFF, target_id="r00001-a-o1", reason="test", decision_id="x")
    (cid,) = b.propose(Decision(policy_name="p", status=DecisionStatus.OK, actions=(action,)))
    denied = await b.decide_action(cid, False, OPS, "not now")
    assert denied.state.value == "denied" and denied.decided_by == "olga"
    with pytest.raises(ActuationRefused):
        await b.decide_action(cid, True, OPS, "")
    with pytest.raises(KeyError):
        await b.decide_action("missing", True, OPS, "")
    await b.set_maintenance("ups-h1-a", True, OPS, "battery swap")
    assert (await b.status()).maintenance == ("ups-h1-a",)
    page = await b.journal(10, None)
    assert [e.kind for e in page.items] == ["maintenance", "deny"]
    assert all(e.actor == "olga" and e.role == "operator" for e in page.items)
    older = await b.journal(10, page.items[0].seq)
    assert [e.kind for e in older.items] == ["deny"]


def test_token_store_keeps_only_digests(tmp_path: Path) -> None:
    clock = SimClock(0.0)
    path = tmp_path / "tokens.json"
    store = TokenStore(clock=clock, path=path)
    secret, rec = store.issue("ops", Role.OPERATOR, ttl_s=100.0)
    assert secret not in path.read_text() and json.loads(path.read_text())[0]["sha256"] == rec.sha256
    assert path.stat().st_mode & 0o077 == 0
    again = TokenStore(clock=clock, path=path)
    assert again.check(secret)[0] is Verdict.OK
    clock.advance_s(100.0)
    assert again.check(secret)[0] is Verdict.EXPIRED
    assert again.check("ww_unknown")[0] is Verdict.UNKNOWN
    assert again.revoke("ops") and not again.revoke("ops")
    with pytest.raises(ConfigError):
        store.add("short", "x", Role.VIEWER)
    path.write_text("{not json")
    with pytest.raises(ConfigError):
        TokenStore(path=path)


def test_sse_pushes_headroom_and_mutations(live: Live) -> None:
    seen: list[str] = []
    with (
        httpx.Client(base_url=live.url, timeout=10.0) as client,
        client.stream("GET", "/api/v1/events", headers=bearer(live.token["viewer"])) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        deadline = time.monotonic() + 5.0
        posted = False
        for line in stream.iter_lines():
            if line.startswith("event: "):
                seen.append(line[7:])
            if "headroom" in seen and not posted:
                r = client.post("/api/v1/mode", json={"mode": "dry-run"}, headers=bearer(live.token["operator"]))
                assert r.status_code == 200
                posted = True
            if {"status", "journal"} <= set(seen) or time.monotonic() > deadline:
                break
    assert {"headroom", "status", "journal"} <= set(seen)
    r = httpx.get(f"{live.url}/api/v1/events", timeout=5.0)
    assert r.status_code == 401


def test_headroom_view_shows_ab_imbalance_and_busiest_pdus() -> None:
    from wattwise.api.views import headroom_view, node_sides

    g = SiteGraph(SITE)
    psu_w = _nominal(g)
    side_b = np.array([p.endswith("psu2") for p in g.psu_ids])  # generated sites: psu2 sits on side B
    skewed = np.where(side_b, 0.5 * psu_w, 1.5 * psu_w)  # A carries 75 % of every bus
    view = headroom_view(g, g.chain_loads(skewed), node_sides(g), 0.0, "test", max_pdus=1)
    a, b = (next(s for s in view.sides if s.side == x) for x in "AB")
    assert a.load_w == pytest.approx(3 * b.load_w)
    assert view.imbalance_frac == pytest.approx(0.5)
    assert view.pdus_shown == 1 and view.pdus_total == 2
    assert [n.id for n in view.nodes if n.kind == "pdu"] == ["pdu-r00001-a"]  # the busier one
    assert len(view.phases) == 3
