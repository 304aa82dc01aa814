"""Graph queries on a small hand-built site whose every answer can be worked out by hand.

Power chain::

    util-a ─┐
            ├─ ats-a ── ups-a ── pdu-a (3 phases: a1/L1, a2/L2, a3/L3)
    gen-a ──┘
    util-b ───────────────────── pdu-b (1 phase: b1, b2)

Servers: s1 (2N: a1 + b1), s2 (one PSU on a2), s3 and s4 in rack-2, fed by racklet rl whose
rectifiers r1/r2 hang on a3 and b2.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.graph import SiteGraph
from wattwise.model.site import (
    Ats,
    Feed,
    Outlet,
    Pdu,
    Psu,
    Rack,
    Racklet,
    RackletPower,
    Redundancy,
    Server,
    Service,
    Site,
    Tier,
    Ups,
)


def hand_site() -> Site:
    return Site(
        id="hand",
        feeds=(
            Feed(id="util-a", capacity_w=100_000),
            Feed(id="gen-a", source="generator", capacity_w=50_000),
            Feed(id="util-b", side="B", capacity_w=100_000),
        ),
        ats=(Ats(id="ats-a", sources=("util-a", "gen-a"), preferred_source="util-a", capacity_w=100_000),),
        ups=(Ups(id="ups-a", input="ats-a", capacity_w=20_000, capacity_va=25_000, battery_wh=4000),),
        pdus=(
            Pdu(
                id="pdu-a",
                input="ups-a",
                phases=3,
                breaker_a=32,
                outlets=(Outlet(id="a1", phase=1), Outlet(id="a2", phase=2), Outlet(id="a3", phase=3)),
            ),
            Pdu(id="pdu-b", input="util-b", breaker_a=16, outlets=(Outlet(id="b1"), Outlet(id="b2"))),
        ),
        racklets=(
            Racklet(
                id="rl",
                power=RackletPower(
                    psus=(Psu(id="r1", input="a3", rating_w=3000), Psu(id="r2", input="b2", rating_w=3000))
                ),
            ),
        ),
        racks=(Rack(id="rack-1"), Rack(id="rack-2", racklet="rl")),
        servers=(
            Server(
                id="s1",
                rack="rack-1",
                idle_w=100,
                peak_w=400,
                redundancy=Redundancy.TWO_N,
                psus=(Psu(id="s1-p1", input="a1", rating_w=500), Psu(id="s1-p2", input="b1", rating_w=500)),
            ),
            Server(id="s2", rack="rack-1", idle_w=50, peak_w=200, psus=(Psu(id="s2-p1", input="a2", rating_w=300),)),
            Server(id="s3", rack="rack-2", idle_w=50, peak_w=300),
            Server(id="s4", rack="rack-2", idle_w=50, peak_w=300),
        ),
        services=(
            Service(id="db", tier=Tier.CRITICAL),
            Service(id="api", tier=Tier.HIGH, depends_on=("db",)),
            Service(id="web", tier=Tier.MEDIUM, depends_on=("api",)),
            Service(id="batch", tier=Tier.LOW, depends_on=("db",)),
            Service(id="report", tier=Tier.LOW, depends_on=("web", "batch")),
        ),
    )


@pytest.fixture
def graph() -> SiteGraph:
    return SiteGraph(hand_site())


def test_indexes(graph: SiteGraph) -> None:
    assert graph.node_ids == ("util-a", "gen-a", "util-b", "ats-a", "ups-a", "pdu-a", "pdu-b")
    assert graph.node_kind == ("feed", "feed", "feed", "ats", "ups", "pdu", "pdu")
    assert graph.node_parent.tolist() == [-1, -1, -1, 0, 3, 4, 2]
    assert graph.psu_ids == ("s1-p1", "s1-p2", "s2-p1", "r1", "r2")
    assert graph.bus_ids == ("s1", "s2", "rl")
    assert graph.psu_bus.tolist() == [0, 0, 1, 2, 2]
    assert graph.server_bus.tolist() == [0, 1, 2, 2]
    assert graph.outlet_ids == ("a1", "a2", "a3", "b1", "b2")
    assert graph.psu_outlet.tolist() == [0, 3, 1, 2, 4]
    assert graph.psu_rating_w.tolist() == [500.0, 500.0, 300.0, 3000.0, 3000.0]
    assert graph.phase_capacity_w.tolist() == [[5888.0, 5888.0, 5888.0], [2944.0, 0.0, 0.0]]


def test_equal_share_splits_each_bus_over_its_psus(graph: SiteGraph) -> None:
    server_w = np.array([400.0, 200.0, 300.0, 300.0])
    # s1: 400 over 2 PSUs; s2: 200 on one; racklet bus: 300 + 300 over 2 rectifiers.
    assert graph.equal_share_psu_input_w(server_w).tolist() == [200.0, 200.0, 200.0, 300.0, 300.0]
    lossy = graph.equal_share_psu_input_w(server_w, efficiency_frac=0.8)
    assert lossy.tolist() == pytest.approx([250.0, 250.0, 250.0, 375.0, 375.0])


def test_chain_loads_sum_phases_pdus_ups_ats_feeds(graph: SiteGraph) -> None:
    psu_w = np.array([200.0, 200.0, 200.0, 300.0, 300.0])
    loads = graph.chain_loads(psu_w)
    # pdu-a: a1 (s1-p1) on L1, a2 (s2-p1) on L2, a3 (r1) on L3; pdu-b: b1 + b2 on L1.
    assert loads.phase_load_w.tolist() == [[200.0, 200.0, 300.0], [500.0, 0.0, 0.0]]
    assert dict(zip(loads.node_ids, loads.load_w.tolist(), strict=True)) == {
        "util-a": 700.0,
        "gen-a": 0.0,
        "util-b": 500.0,
        "ats-a": 700.0,
        "ups-a": 700.0,
        "pdu-a": 700.0,
        "pdu-b": 500.0,
    }
    assert loads.phase_headroom_w.tolist() == [[5688.0, 5688.0, 5588.0], [2444.0, 0.0, 0.0]]
    assert loads.of("ups-a") == (700.0, 20_000.0)
    assert loads.of("pdu-b") == (500.0, 2944.0)
    assert loads.headroom_w.tolist() == pytest.approx([99_300, 50_000, 99_500, 99_300, 19_300, 17_664 - 700, 2444])
    with pytest.raises(KeyError):
        loads.of("nope")


def test_ups_efficiency_raises_the_load_above_it(graph: SiteGraph) -> None:
    psu_w = np.array([200.0, 200.0, 200.0, 300.0, 300.0])
    loads = graph.chain_loads(psu_w, ups_efficiency_frac=np.array([0.875]))
    assert loads.of("ups-a")[0] == 700.0  # output side
    assert loads.of("ats-a")[0] == pytest.approx(800.0)  # 700 / 0.875
    assert loads.of("util-a")[0] == pytest.approx(800.0)
    assert loads.of("util-b")[0] == 500.0  # not behind the UPS


def test_ats_transfer_moves_the_load_to_the_generator(graph: SiteGraph) -> None:
    psu_w = np.array([200.0, 200.0, 200.0, 300.0, 300.0])
    loads = graph.chain_loads(psu_w, ats_source={"ats-a": "gen-a"})
    assert (loads.of("util-a")[0], loads.of("gen-a")[0], loads.of("util-b")[0]) == (0.0, 700.0, 500.0)
    # The preferred-source answer is unchanged afterwards (no state leaks between queries).
    assert graph.chain_loads(psu_w).of("util-a")[0] == 700.0


def test_power_path_follows_each_psu_to_its_feed(graph: SiteGraph) -> None:
    assert graph.power_path("s1") == (
        ("s1-p1", "a1", "pdu-a", "ups-a", "ats-a", "util-a"),
        ("s1-p2", "b1", "pdu-b", "util-b"),
    )
    assert graph.power_path("s1", ats_source={"ats-a": "gen-a"})[0][-1] == "gen-a"
    assert graph.power_path("s2") == (("s2-p1", "a2", "pdu-a", "ups-a", "ats-a", "util-a"),)


def test_racklet_fed_server_path_runs_through_the_rectifiers(graph: SiteGraph) -> None:
    assert graph.power_path("s3") == (
        ("r1", "a3", "pdu-a", "ups-a", "ats-a", "util-a"),
        ("r2", "b2", "pdu-b", "util-b"),
    )
    assert graph.power_path("s4") == graph.power_path("s3")


def test_upstream_ids(graph: SiteGraph) -> None:
    assert graph.upstream_ids("pdu-b") == ("pdu-b", "util-b")
    assert graph.upstream_ids("util-a") == ("util-a",)
    assert graph.upstream_ids("a1", ats_source={"ats-a": "gen-a"}) == ("a1", "pdu-a", "ups-a", "ats-a", "gen-a")
    with pytest.raises(KeyError):
        graph.upstream_ids("nope")


def test_servers_below(graph: SiteGraph) -> None:
    names = lambda idx: [graph.server_ids[i] for i in idx]  # noqa: E731
    assert names(graph.servers_below("util-a")) == ["s1", "s2", "s3", "s4"]
    assert names(graph.servers_below("gen-a")) == ["s1", "s2", "s3", "s4"]  # either ATS source counts
    assert names(graph.servers_below("util-b")) == ["s1", "s3", "s4"]
    assert names(graph.servers_below("pdu-b")) == ["s1", "s3", "s4"]
    assert names(graph.servers_below("a2")) == ["s2"]
    assert names(graph.servers_below("b1")) == ["s1"]
    assert names(graph.servers_below("b2")) == ["s3", "s4"]
    with pytest.raises(KeyError):
        graph.servers_below("nope")


def test_servers_below_an_outlet_agree_with_its_pdu() -> None:
    """Outlets answer from a table built once; their PDU from the tree: the two must agree."""
    from wattwise.model.generate import SiteSpec, generate_site

    g = SiteGraph(generate_site(SiteSpec(servers=60, servers_per_rack=10, racks_per_hall=3, seed=2)))
    assert g.site.racklets  # racklet-fed servers hang off rectifier outlets
    for pdu in g.site.pdus:
        union = set().union(*(g.servers_below(o.id).tolist() for o in pdu.outlets))
        assert union == set(g.servers_below(pdu.id).tolist())
    some = g.servers_below(g.site.pdus[0].outlets[0].id)
    with pytest.raises(ValueError):
        some[:1] = 0  # shared between calls: read-only


def test_downstream_ids(graph: SiteGraph) -> None:
    assert graph.downstream_ids("ups-a") == {
        "pdu-a",
        "a1",
        "a2",
        "a3",
        "s1-p1",
        "s2-p1",
        "r1",
        "s1",
        "s2",
        "s3",
        "s4",
    }
    assert graph.downstream_ids("util-b") == {"pdu-b", "b1", "b2", "s1-p2", "r2", "s1", "s3", "s4"}
    assert {"ats-a", "ups-a", "pdu-a"} <= graph.downstream_ids("gen-a")
    assert "util-b" not in graph.downstream_ids("gen-a")
    assert graph.downstream_ids("b2") == {"r2", "s3", "s4"}


def test_dependency_queries(graph: SiteGraph) -> None:
    assert graph.dependency_closure("report") == {"report", "web", "api", "db", "batch"}
    assert graph.dependency_closure("report") is graph.dependency_closure("report")  # cached
    assert graph.dependency_closure("db") == {"db"}
    assert graph.dependants["db"] == {"api", "web", "batch", "report"}
    assert graph.dependants["report"] == frozenset()
    assert graph.dependency_order == ("db", "api", "batch", "web", "report")
    assert graph.services["web"].tier is Tier.MEDIUM


@settings(max_examples=15, deadline=None)
@given(
    servers=st.integers(1, 300),
    per_rack=st.integers(4, 24),
    racklet_racks=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_generated_sites_conserve_power(servers: int, per_rack: int, racklet_racks: int, seed: int) -> None:
    spec = SiteSpec(
        servers=servers, servers_per_rack=per_rack, racks_per_hall=3, racklet_racks_per_hall=racklet_racks, seed=seed
    )
    graph = SiteGraph(generate_site(spec))
    rng = np.random.default_rng(seed)
    server_w = rng.uniform(graph.server_idle_w, graph.server_peak_w)
    psu_w = graph.equal_share_psu_input_w(server_w)
    assert psu_w.sum() == pytest.approx(server_w.sum())  # every server is fed, nothing invented
    loads = graph.chain_loads(psu_w)
    kinds = np.array(loads.node_kind)
    assert loads.load_w[kinds == "feed"].sum() == pytest.approx(server_w.sum())
    assert loads.load_w[kinds == "pdu"].sum() == pytest.approx(server_w.sum())
    for sid in graph.server_ids[:: max(1, servers // 7)]:
        paths = graph.power_path(sid)
        assert paths
        assert all(graph.node_kind[graph.node_index[p[-1]]] == "feed" for p in paths)
        i = graph.server_index[sid]
        assert all(i in graph.servers_below(p[1]) for p in paths)


def test_pdu_straight_on_a_feed() -> None:
    """No ATS, no UPS: the PDU load lands on the feed directly."""
    site = Site(
        id="tiny",
        feeds=(Feed(id="f", capacity_w=10_000),),
        pdus=(Pdu(id="p", input="f", breaker_a=16, outlets=(Outlet(id="o1"), Outlet(id="o2"))),),
        racks=(Rack(id="r"),),
        servers=(
            Server(id="s", rack="r", idle_w=10, peak_w=90, psus=(Psu(id="s-p", input="o2", rating_w=100),)),
            Server(id="unpowered", rack="r", idle_w=10, peak_w=90),  # built in code: no rules ran
        ),
    )
    graph = SiteGraph(site)
    assert graph.server_bus.tolist() == [0, -1]
    assert graph.equal_share_psu_input_w(np.array([80.0, 50.0])).tolist() == [80.0]
    assert graph.power_path("unpowered") == ()
    loads = graph.chain_loads(np.array([80.0]))
    assert loads.load_w.tolist() == [80.0, 80.0]
    assert graph.power_path("s") == (("s-p", "o2", "p", "f"),)
    assert graph.downstream_ids("f") == {"p", "o1", "o2", "s-p", "s"}
    assert graph.servers_below("f").tolist() == [0]
    assert graph.dependency_order == ()


def test_subtree_walk_terminates_on_an_unvalidated_loop() -> None:
    """A Site built in code skips the rules; a UPS loop must not hang the graph walks."""
    site = Site(
        id="loop",
        feeds=(Feed(id="f", capacity_w=10_000),),
        ups=(
            Ups(id="u1", input="u2", capacity_w=1000, capacity_va=1000, battery_wh=10),
            Ups(id="u2", input="u1", capacity_w=1000, capacity_va=1000, battery_wh=10),
        ),
    )
    graph = SiteGraph(site)
    assert graph.downstream_ids("u1") == {"u2"}
    assert graph.upstream_ids("u1") == ("u1", "u2")


def test_dependants_and_order_on_a_generated_dag() -> None:
    graph = SiteGraph(generate_site(SiteSpec(servers=400, services=150, seed=11)))
    users: dict[str, set[str]] = {s.id: set() for s in graph.site.services}
    for s in graph.site.services:
        for d in s.depends_on:
            users[d].add(s.id)
    for sid in users:  # brute force: walk the reverse edges
        seen: set[str] = set()
        todo = list(users[sid])
        while todo:
            x = todo.pop()
            if x not in seen:
                seen.add(x)
                todo.extend(users[x])
        assert graph.dependants[sid] == seen
    position = {sid: i for i, sid in enumerate(graph.dependency_order)}
    assert len(position) == 150
    assert all(position[d] < position[s.id] for s in graph.site.services for d in s.depends_on)
