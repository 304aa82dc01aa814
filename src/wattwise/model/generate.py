"""Generate realistic sites of any size, deterministically from a seed.

Layout per hall: utility feeds A and B and a shared generator; per side an ATS (utility,
generator) → a UPS → one three-phase PDU per rack and side; 2N servers with one PSU on each
side. Some racks are racklet racks (power module of rectifier PSUs on both sides, cooling
module). Services form a DAG whose edges point to services of the same or a higher tier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wattwise.model.loader import gc_paused
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
    Server,
    Service,
    Site,
    Tier,
    Ups,
    Workload,
)

_TIERS = (Tier.CRITICAL, Tier.HIGH, Tier.MEDIUM, Tier.LOW)
_TIER_SHARE = (0.1, 0.2, 0.3, 0.4)
_THROTTLE = {
    Tier.CRITICAL: (1.0,),
    Tier.HIGH: (1.0, 0.8, 0.6),
    Tier.MEDIUM: (1.0, 0.7, 0.5),
    Tier.LOW: (1.0, 0.5),
}


@dataclass(frozen=True)
class SiteSpec:
    """Shape of a generated site."""

    servers: int = 2000
    servers_per_rack: int = 20
    racks_per_hall: int = 50
    racklet_racks_per_hall: int = 2
    services: int | None = None
    event_processors: int | None = None
    seed: int = 0
    site_id: str = "generated"


def _power_chain(n_halls: int, hall_servers_peak_w: float) -> tuple[list[Feed], list[Ats], list[Ups]]:
    feed_w = max(50_000.0, round(1.5 * n_halls * hall_servers_peak_w, -3))
    feeds = [
        Feed(id="utility-a", side="A", source="grid", capacity_w=feed_w, price_signal="price", carbon_signal="carbon"),
        Feed(id="utility-b", side="B", source="grid", capacity_w=feed_w, price_signal="price", carbon_signal="carbon"),
        Feed(id="generator-a", side="A", source="generator", capacity_w=feed_w),
        Feed(id="generator-b", side="B", source="generator", capacity_w=feed_w),
    ]
    ats: list[Ats] = []
    ups: list[Ups] = []
    ups_w = max(20_000.0, round(1.25 * hall_servers_peak_w, -3))
    for h in range(1, n_halls + 1):
        for side in ("a", "b"):
            ats.append(
                Ats(
                    id=f"ats-h{h}-{side}",
                    sources=(f"utility-{side}", f"generator-{side}"),
                    preferred_source=f"utility-{side}",
                    transfer_time_s=0.2,
                    capacity_w=feed_w,
                )
            )
            ups.append(
                Ups(
                    id=f"ups-h{h}-{side}",
                    input=f"ats-h{h}-{side}",
                    capacity_w=ups_w,
                    capacity_va=ups_w / 0.9,
                    battery_wh=ups_w * 10 / 60,
                    state_of_health_frac=0.95,
                )
            )
    return feeds, ats, ups


def _rack(
    rng: np.random.Generator, hall: int, rack_no: int, n_servers: int, racklet: bool
) -> tuple[Rack, list[Pdu], list[Server], Racklet | None]:
    rid = f"r{rack_no:05d}"
    pdus = []
    n_outlets = 3 if racklet else max(3, n_servers)
    for side in ("a", "b"):
        outlets = tuple(Outlet(id=f"{rid}-{side}-o{k + 1}", phase=k % 3 + 1) for k in range(n_outlets))
        pdus.append(Pdu(id=f"pdu-{rid}-{side}", input=f"ups-h{hall}-{side}", phases=3, breaker_a=32.0, outlets=outlets))
    idle = rng.uniform(55.0, 120.0, n_servers)
    peak = idle + rng.uniform(150.0, 330.0, n_servers)
    servers = []
    for k in range(n_servers):
        psus: tuple[Psu, ...] = ()
        if not racklet:
            rating_w = float(np.ceil(peak[k] / 100.0) * 100.0 + 100.0)
            psus = tuple(
                Psu(id=f"{rid}-s{k + 1}-psu{j + 1}", input=f"{rid}-{side}-o{k + 1}", rating_w=rating_w)
                for j, side in enumerate(("a", "b"))
            )
        servers.append(
            Server(
                id=f"{rid}-s{k + 1}",
                rack=rid,
                idle_w=round(float(idle[k]), 1),
                peak_w=round(float(peak[k]), 1),
                psus=psus,
                redundancy=Redundancy.TWO_N if psus else Redundancy.N,
                model=f"specpower-{int(rng.integers(0, 25))}",
            )
        )
    rl = None
    if racklet:
        rect = tuple(
            Psu(
                id=f"rl-{rid}-rect{j + 1}",
                input=f"{rid}-{side}-o{j // 2 + 1}",
                rating_w=3000.0,
                efficiency="80plus_titanium",
            )
            for j, side in enumerate(("a", "b", "a", "b"))
        )
        rl = Racklet(id=f"rl-{rid}", power=RackletPower(psus=rect), cooling=RackletCooling(capacity_w=30_000.0))
    rack = Rack(id=rid, hall=f"hall-{hall}", racklet=rl.id if rl else None)
    return rack, pdus, servers, rl


def _services(rng: np.random.Generator, n: int) -> list[Service]:
    tiers = rng.choice(len(_TIERS), size=n, p=_TIER_SHARE)
    tiers.sort()  # critical first, so dependencies (on lower indices) point to >= tiers
    services = []
    for i in range(n):
        tier = _TIERS[int(tiers[i])]
        deps: tuple[str, ...] = ()
        if i > 0:
            k = int(rng.integers(0, min(3, i) + 1))
            picks = rng.choice(i, size=k, replace=False) if k else np.array([], dtype=np.int64)
            deps = tuple(f"svc-{int(j):04d}" for j in sorted(picks))
        services.append(
            Service(
                id=f"svc-{i:04d}",
                tier=tier,
                depends_on=deps,
                throttle_levels_frac=_THROTTLE[tier],
                min_power_frac=0.3 if tier is Tier.CRITICAL else 0.0,
                flexible=tier is Tier.LOW and bool(rng.random() < 0.5),
            )
        )
    return services


def _workloads(rng: np.random.Generator, servers: list[Server], services: list[Service]) -> list[Workload]:
    out: list[Workload] = []
    n = len(servers)
    # Every service gets at least one instance; critical ones get two, on different halls' halves.
    order = rng.permutation(n)
    pos = 0
    for svc in services:
        for _ in range(2 if svc.tier is Tier.CRITICAL else 1):
            server = servers[int(order[pos % n])]
            pos += 1
            out.append(_workload(rng, len(out), svc.id, server.id))
    for server in servers:
        for _ in range(int(rng.integers(0, 2))):
            svc = services[int(rng.integers(0, len(services)))]
            out.append(_workload(rng, len(out), svc.id, server.id))
    return out


def _workload(rng: np.random.Generator, i: int, service: str, server: str) -> Workload:
    return Workload(
        id=f"wl-{i:06d}",
        service=service,
        server=server,
        cpu_frac=round(float(rng.uniform(0.1, 0.6)), 3),
        memory_gib=round(float(rng.uniform(1.0, 32.0)), 1),
        state_gib=round(float(rng.uniform(0.1, 20.0)), 1),
        trace=f"planetlab:{int(rng.integers(0, 11746))}",
    )


def _rack_sizes(spec: SiteSpec) -> list[tuple[int, bool]]:
    """(servers, is_racklet) per rack; the last rack never holds more than ``servers_per_rack``.

    Racklet racks hold at most 12 servers, so the servers they do not take spill into extra
    full racks at the end (earlier versions piled them all into the last rack, overloading its
    PDU breakers on large sites).

    >>> _rack_sizes(SiteSpec(servers=50, servers_per_rack=20, racks_per_hall=3, racklet_racks_per_hall=1))
    [(12, True), (20, False), (18, False)]
    """
    n_racks = -(-spec.servers // spec.servers_per_rack)
    sizes: list[tuple[int, bool]] = []
    left = spec.servers
    for r in range(n_racks):
        is_racklet = (r % spec.racks_per_hall) < spec.racklet_racks_per_hall and n_racks > 1
        n = min(left, 12 if is_racklet else spec.servers_per_rack)
        if r == n_racks - 1:
            n = left
        sizes.append((n, is_racklet))
        left -= n
    last, is_racklet = sizes.pop()
    while last > 0:
        n = min(last, 12 if is_racklet else spec.servers_per_rack)
        sizes.append((n, is_racklet))
        last -= n
        is_racklet = False
    return sizes


def generate_site(spec: SiteSpec) -> Site:
    """Build a valid site of ``spec.servers`` servers.

    >>> site = generate_site(SiteSpec(servers=40, servers_per_rack=10, racks_per_hall=2, seed=1))
    >>> len(site.servers), len(site.ups)
    (40, 4)
    """
    with gc_paused():
        return _generate(spec)


def _generate(spec: SiteSpec) -> Site:
    rng = np.random.default_rng(spec.seed)
    sizes = _rack_sizes(spec)
    n_halls = -(-len(sizes) // spec.racks_per_hall)
    hall_peak_w = min(len(sizes), spec.racks_per_hall) * spec.servers_per_rack * 450.0
    feeds, ats, ups = _power_chain(n_halls, hall_peak_w)
    racks, pdus, servers, racklets = [], [], [], []
    for r, (n, is_racklet) in enumerate(sizes):
        rack, rack_pdus, rack_servers, rl = _rack(rng, r // spec.racks_per_hall + 1, r + 1, n, is_racklet)
        racks.append(rack)
        pdus.extend(rack_pdus)
        servers.extend(rack_servers)
        if rl is not None:
            racklets.append(rl)
    n_services = spec.services if spec.services is not None else max(3, spec.servers // 10)
    services = _services(rng, n_services)
    workloads = _workloads(rng, servers, services)
    n_proc = spec.event_processors if spec.event_processors is not None else max(2, spec.servers // 50)
    hosts = rng.choice(len(servers), size=min(n_proc, len(servers)), replace=False)
    procs = [
        EventProcessor(id=f"ep-{i:04d}", server=servers[int(h)].id, partitions=tuple(f"p{i}-{j}" for j in range(4)))
        for i, h in enumerate(hosts)
    ]
    return Site(
        id=spec.site_id,
        name=f"{spec.servers}-server generated site (seed {spec.seed})",
        feeds=tuple(feeds),
        ats=tuple(ats),
        ups=tuple(ups),
        pdus=tuple(pdus),
        racklets=tuple(racklets),
        racks=tuple(racks),
        servers=tuple(servers),
        services=tuple(services),
        workloads=tuple(workloads),
        event_processors=tuple(procs),
    )
