"""Random valid sites survive YAML (and JSON) unchanged; generated sites and examples load clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import EXAMPLES

from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.loader import check_file, check_text, dump_site, load_site
from wattwise.model.site import (
    Ats,
    EventProcessor,
    Feed,
    Outlet,
    Pdu,
    Psu,
    Rack,
    Racklet,
    RackletCooling,
    RackletPower,
    Redundancy,
    RuntimeTargets,
    Server,
    Service,
    Site,
    Tier,
    Ups,
    Workload,
)

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,12}", fullmatch=True)
text = st.text(max_size=30)  # any unicode: quoting, "yes"/"null"/"1e3" look-alikes, control chars


def floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def sites(draw: st.DrawFn) -> Site:
    """A valid site: unique ids, every reference resolved, no redundancy claims, DAG services."""
    prefix = draw(ids)  # any legal id characters; numbered so that ids stay unique
    pool = iter(f"{prefix}.{i}" for i in range(40))
    n_feeds = draw(st.integers(1, 3))
    feeds = tuple(
        Feed(
            id=next(pool),
            side=draw(st.sampled_from(["A", "B", "C"])),
            source=draw(st.sampled_from(["grid", "generator", "solar", "battery"])),
            capacity_w=draw(floats(1.0, 1e9).filter(lambda x: x > 0)),
            voltage_v=draw(floats(1.0, 40_000.0)),
            price_signal=draw(st.none() | text),
        )
        for _ in range(n_feeds)
    )
    ats: tuple[Ats, ...] = ()
    if n_feeds >= 2 and draw(st.booleans()):
        src = (feeds[0].id, feeds[1].id)
        ats = (Ats(id=next(pool), sources=src, preferred_source=src[draw(st.integers(0, 1))], capacity_w=1e6),)
    upstream = [f.id for f in feeds] + [a.id for a in ats]
    ups = tuple(
        Ups(
            id=next(pool),
            input=draw(st.sampled_from(upstream)),
            capacity_w=1e5,
            capacity_va=draw(floats(1e5, 1e9)),
            battery_wh=draw(floats(1e-3, 1e8).filter(lambda x: x > 0)),
            state_of_health_frac=draw(floats(0.0, 1.0)),
        )
        for _ in range(draw(st.integers(0, 2)))
    )
    upstream += [u.id for u in ups]
    pdus = tuple(
        Pdu(
            id=next(pool),
            input=draw(st.sampled_from(upstream)),
            phases=3,
            breaker_a=4000.0,
            outlets=tuple(Outlet(id=next(pool), phase=draw(st.integers(1, 3))) for _ in range(2)),
        )
        for _ in range(draw(st.integers(1, 2)))
    )
    outlets = [o.id for p in pdus for o in p.outlets]
    racks = (Rack(id=next(pool), hall=draw(text), cooling_capacity_w=draw(floats(1.0, 500_000.0))),)
    servers = []
    for _ in range(draw(st.integers(0, 3))):
        idle_w = draw(floats(0.0, 1000.0))
        servers.append(
            Server(
                id=next(pool),
                rack=racks[0].id,
                idle_w=idle_w,
                peak_w=draw(floats(max(idle_w, 1.0), 1e5)),
                psus=(Psu(id=next(pool), input=draw(st.sampled_from(outlets)), rating_w=2e5),),
                model=draw(text),
            )
        )
    racklets: tuple[Racklet, ...] = ()
    if draw(st.booleans()):
        power = RackletPower(
            ac_input=draw(st.sampled_from(["120V", "240V", "3ph"])),
            dc_out_v=draw(st.sampled_from([12, 48])),
            base_capacity_w=draw(floats(1.0, 1e9)),
            redundancy=Redundancy.N,
            psus=(Psu(id=next(pool), input=draw(st.sampled_from(outlets)), rating_w=2e5),),
        )
        cooling = RackletCooling(
            capacity_w=draw(floats(1000.0, 200_000.0)),
            kind=draw(st.sampled_from(["air", "liquid"])),
            fans=draw(st.integers(0, 64)),
        )
        racklets = (Racklet(id=next(pool), power=power, cooling=cooling),)
        racks = (*racks, Rack(id=next(pool), racklet=racklets[0].id))
        servers.append(Server(id=next(pool), rack=racks[-1].id, idle_w=1.0, peak_w=draw(floats(1.0, 1e5))))
    services: list[Service] = []
    for _ in range(draw(st.integers(0, 4))):
        deps = draw(st.lists(st.sampled_from([s.id for s in services]), unique=True)) if services else []
        levels = sorted(draw(st.lists(floats(0.0, 0.99), unique=True, max_size=3)), reverse=True)
        services.append(
            Service(
                id=next(pool),
                tier=draw(st.sampled_from(list(Tier))),
                depends_on=tuple(deps),
                throttle_levels_frac=(1.0, *levels),
                flexible=draw(st.booleans()),
            )
        )
    workloads = tuple(
        Workload(id=next(pool), service=services[0].id, server=s.id, cpu_frac=draw(floats(0.0, 1.0)), trace=draw(text))
        for s in servers[:1]
        if services
    )
    procs = tuple(
        EventProcessor(id=next(pool), server=s.id, partitions=tuple(draw(st.lists(text, unique=True, max_size=3))))
        for s in servers[:1]
    )
    return Site(
        id=next(pool),
        name=draw(text),
        feeds=feeds,
        ats=ats,
        ups=ups,
        pdus=pdus,
        racklets=racklets,
        racks=racks,
        servers=tuple(servers),
        services=tuple(services),
        workloads=workloads,
        event_processors=procs,
        runtime_targets=RuntimeTargets(critical_s=draw(floats(0.0, 86_400.0))),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(site=sites())
def test_random_valid_sites_round_trip_through_yaml(site: Site) -> None:
    text_yaml = dump_site(site)
    loaded, problems = check_text(text_yaml, "rt.yaml")
    assert [p for p in problems if p.severity == "error"] == []
    assert loaded == site


@settings(max_examples=30, deadline=None)
@given(site=sites())
def test_random_valid_sites_round_trip_through_json(site: Site) -> None:
    loaded, problems = check_text(site.model_dump_json(exclude_defaults=True), "rt.json")
    assert [p for p in problems if p.severity == "error"] == []
    assert loaded == site


@pytest.mark.parametrize("servers", [1, 7, 59, 260])
def test_generated_sites_are_valid_and_round_trip(servers: int) -> None:
    site = generate_site(SiteSpec(servers=servers, servers_per_rack=10, racks_per_hall=5, seed=servers))
    assert len(site.servers) == servers
    loaded, problems = check_text(dump_site(site))
    assert problems == []
    assert loaded == site


def test_big_racklet_share_spills_into_extra_racks_not_the_last_one() -> None:
    # 2 racklet racks per hall hold 12 servers each, not 20: the 16 left over used to pile
    # into the last rack and overload its breakers.
    site = generate_site(SiteSpec(servers=1000, servers_per_rack=20, racks_per_hall=10, seed=4))
    per_rack: dict[str, int] = {}
    for s in site.servers:
        per_rack[s.rack] = per_rack.get(s.rack, 0) + 1
    assert max(per_rack.values()) == 20
    assert sum(per_rack.values()) == 1000
    _, problems = check_text(site.model_dump_json(exclude_defaults=True), "g.json")
    assert problems == []


def test_generation_is_deterministic_for_a_seed() -> None:
    spec = SiteSpec(servers=120, servers_per_rack=10, racks_per_hall=4, seed=9)
    assert generate_site(spec) == generate_site(spec)
    assert generate_site(spec) != generate_site(SiteSpec(servers=120, servers_per_rack=10, racks_per_hall=4, seed=10))


# two-hall-site.yaml was generated before the generator stopped piling the servers that racklet
# racks could not take into the last rack: its 52 servers overload that rack's PDUs when one
# side fails over. `python scripts/make_examples.py` regenerates it without the warning.
KNOWN_WARNINGS = {
    "two-hall-site.yaml": {("breaker-failover", "pdus[198].outlets"), ("breaker-failover", "pdus[199].outlets")},
}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_loads_clean(path: Path) -> None:
    site, problems = check_file(path)
    assert {(p.rule, p.path) for p in problems} == KNOWN_WARNINGS.get(path.name, set())
    assert all(p.severity == "warning" for p in problems)
    assert site is not None
    assert load_site(path) == site


def test_json_and_yaml_of_one_site_load_equal(tmp_path: Path) -> None:
    site = generate_site(SiteSpec(servers=30, servers_per_rack=10, racks_per_hall=2, seed=3))
    (tmp_path / "s.json").write_text(json.dumps(site.model_dump(mode="json")), encoding="utf-8")
    (tmp_path / "s.yaml").write_text(dump_site(site), encoding="utf-8")
    assert load_site(tmp_path / "s.json") == load_site(tmp_path / "s.yaml") == site
