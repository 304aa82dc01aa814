"""Small random sites and states built directly as arrays (thousands per second).

Building a pydantic ``Site`` costs milliseconds; the property tests need tens of thousands of
states, so they build :class:`SiteIndex` values straight from NumPy draws. Every draw is a
self-consistent topology: feeds → optional ATS → UPS → PDUs (1 or 3 phases) → PSUs → DC buses
(a server's own PSUs, or a racklet's rectifiers feeding whole racks); services with tiers,
a random DAG and throttle levels; workloads on servers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wattwise.decide.base import EfficiencyCurves, PowerState, SiteForecast
from wattwise.decide.index import SiteIndex, dag_arrays

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "psu_efficiency"

# Real values (shared/datasets/psu_efficiency): the measured 600 W front-end curve (a subset of
# its 27 points, load W / 600 and efficiency %), and the 80 PLUS Titanium 230 V internal
# redundant thresholds at 10/20/50/100 % load.
PFE_LOAD_FRAC = np.array([75.157, 105.219, 140.292, 206.681, 294.363, 345.094, 420.251, 522.965, 600.0]) / 600.0
PFE_EFF_FRAC = np.array([88.040, 90.997, 92.949, 93.865, 94.253, 94.283, 94.054, 93.457, 92.949]) / 100.0
TITANIUM_LOAD_FRAC = np.array([0.10, 0.20, 0.50, 1.00])
TITANIUM_EFF_FRAC = np.array([0.90, 0.94, 0.96, 0.91])


def real_curves() -> EfficiencyCurves:
    """Two curves from the real data set, padded to the same number of points."""
    n = len(PFE_LOAD_FRAC)
    tl = np.interp(np.linspace(0, 1, n), np.linspace(0, 1, 4), TITANIUM_LOAD_FRAC)
    te = np.interp(tl, TITANIUM_LOAD_FRAC, TITANIUM_EFF_FRAC)
    return EfficiencyCurves(load_frac=np.vstack([PFE_LOAD_FRAC, tl]), efficiency_frac=np.vstack([PFE_EFF_FRAC, te]))


def _chain(rng: np.random.Generator) -> dict[str, object]:
    n_feed = int(rng.integers(1, 4))
    n_ats = int(rng.integers(0, 3)) if n_feed >= 2 else 0
    n_ups = int(rng.integers(1, 4))
    n_pdu = int(rng.integers(1, 5))
    n_node = n_feed + n_ats + n_ups + n_pdu
    kind = np.repeat(np.arange(4), [n_feed, n_ats, n_ups, n_pdu])
    parent = np.full(n_node, -1, dtype=np.int64)
    ats_sources = np.array([rng.choice(n_feed, 2, replace=False) for _ in range(n_ats)], dtype=np.int64).reshape(-1, 2)
    parent[n_feed : n_feed + n_ats] = ats_sources[:, 0] if n_ats else []
    above_ups = np.arange(n_feed + n_ats)
    ups_node = np.arange(n_ups) + n_feed + n_ats
    parent[ups_node] = rng.choice(above_ups, n_ups)
    pdu_node = np.arange(n_pdu) + n_feed + n_ats + n_ups
    parent[pdu_node] = np.where(rng.random(n_pdu) < 0.85, rng.choice(ups_node, n_pdu), rng.choice(above_ups, n_pdu))
    phases = np.where(rng.random(n_pdu) < 0.5, 1, 3)
    phase_w = rng.uniform(400.0, 4000.0, n_pdu)
    phase_cap = np.where(np.arange(3)[None, :] < phases[:, None], phase_w[:, None], 0.0)
    cap = np.concatenate(
        [
            rng.uniform(1000, 20000, n_feed),
            rng.uniform(1000, 20000, n_ats),
            rng.uniform(500, 10000, n_ups),
            phase_w * phases,
        ]
    )
    return {
        "node_ids": tuple(f"n{i}" for i in range(n_node)),
        "node_kind": kind.astype(np.int64),
        "node_parent": parent,
        "node_capacity_w": cap,
        "pdu_node": pdu_node.astype(np.int64),
        "phase_capacity_w": phase_cap,
        "ats_sources": ats_sources,
        "ups_node": ups_node.astype(np.int64),
        "ups_battery_wh": rng.uniform(50.0, 2000.0, n_ups),
        "ups_soh_frac": rng.uniform(0.5, 1.0, n_ups),
        "ups_low_battery_frac": rng.uniform(0.05, 0.3, n_ups),
        "_phases": phases,
    }


def _servers(rng: np.random.Generator, phases: np.ndarray) -> dict[str, object]:
    n_pdu = len(phases)
    n_rack = int(rng.integers(1, 4))
    n_racklet = int(rng.integers(0, 2))
    rack_racklet = np.where(rng.random(n_rack) < 0.4, 0, -1) if n_racklet else np.full(n_rack, -1)
    n_srv = int(rng.integers(1, 11))
    server_rack = rng.integers(0, n_rack, n_srv)
    switch = rack_racklet[server_rack] < 0
    own = np.flatnonzero(switch)
    server_bus = np.full(n_srv, -1, dtype=np.int64)
    server_bus[own] = np.arange(len(own))
    n_psu_own = rng.integers(1, 3, len(own))
    psu_bus = list(np.repeat(np.arange(len(own)), n_psu_own))
    idle = rng.uniform(40.0, 150.0, n_srv)
    peak = idle + rng.uniform(50.0, 400.0, n_srv)
    rating = list(np.repeat(np.ceil(peak[own] / 100) * 100 + rng.choice([0, 100, 500], len(own)), n_psu_own))
    if n_racklet:
        k = int(rng.integers(2, 5))
        server_bus[~switch] = len(own)
        psu_bus += [len(own)] * k
        rating += list(rng.choice([1000.0, 2000.0, 3000.0], k))
    n_psu = len(psu_bus)
    psu_pdu = rng.integers(0, n_pdu, n_psu)
    return {
        "server_ids": tuple(f"s{i}" for i in range(n_srv)),
        "server_idle_w": idle,
        "server_peak_w": peak,
        "server_rack": server_rack.astype(np.int64),
        "server_bus": server_bus,
        "server_switchable": switch,
        "psu_ids": tuple(f"psu{i}" for i in range(n_psu)),
        "psu_outlet_ids": tuple(f"o{i}" for i in range(n_psu)),
        "psu_bus": np.array(psu_bus, dtype=np.int64),
        "psu_rating_w": np.array(rating, dtype=np.float64),
        "psu_curve": rng.integers(0, 2, n_psu).astype(np.int64),
        "curve_names": ("pfe", "titanium"),
        "psu_pdu": psu_pdu.astype(np.int64),
        "psu_phase": (rng.integers(0, 3, n_psu) % phases[psu_pdu]).astype(np.int64),
        "rack_ids": tuple(f"r{i}" for i in range(n_rack)),
        "rack_racklet": rack_racklet.astype(np.int64),
        "rack_cooling_capacity_w": rng.uniform(500.0, 6000.0, n_rack),
        "racklet_ids": tuple(f"rl{i}" for i in range(n_racklet)),
        "racklet_cooling_capacity_w": rng.uniform(500.0, 6000.0, n_racklet),
        "racklet_trip_inlet_c": np.full(n_racklet, 40.0),
        "racklet_setpoint_inlet_c": np.full(n_racklet, 24.0),
    }


LEVEL_SETS = ((1.0,), (1.0, 0.5), (1.0, 0.8, 0.6), (1.0, 0.7, 0.5, 0.3))


def _services(rng: np.random.Generator, n_srv: int) -> dict[str, object]:
    n = int(rng.integers(1, 9))
    rank = rng.integers(0, 4, n).astype(np.int64)
    src, dst = [], []
    for i in range(1, n):
        for j in rng.choice(i, int(rng.integers(0, min(i, 3) + 1)), replace=False):
            src.append(i)
            dst.append(int(j))
    src_a, dst_a = np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64)
    dag = dag_arrays(rank, src_a, dst_a)
    levels = np.zeros((n, 4))
    n_levels = np.zeros(n, dtype=np.int64)
    for i in range(n):
        ls = LEVEL_SETS[int(rng.integers(0, 4))]
        levels[i, : len(ls)] = ls
        n_levels[i] = len(ls)
    n_wl = int(rng.integers(n, 3 * n + 1))
    wl_service = np.concatenate([np.arange(n), rng.integers(0, n, n_wl - n)]).astype(np.int64)
    return {
        "service_ids": tuple(f"svc{i}" for i in range(n)),
        "service_rank": rank,
        "service_levels_frac": levels,
        "service_n_levels": n_levels,
        "service_flexible": rng.random(n) < 0.3,
        "service_restore_order": np.zeros(n, dtype=np.int64),
        "dep_src": src_a,
        "dep_dst": dst_a,
        "service_topo": np.argsort(dag["service_dep_depth"], kind="stable").astype(np.int64),
        **dag,
        "wl_ids": tuple(f"wl{i}" for i in range(n_wl)),
        "wl_server": rng.integers(0, n_srv, n_wl).astype(np.int64),
        "wl_service": wl_service,
        "wl_cpu_frac": rng.uniform(0.05, 0.9, n_wl),
        "wl_state_gib": rng.uniform(0.1, 40.0, n_wl),
        "wl_migratable": rng.random(n_wl) < 0.9,
    }


def random_index(rng: np.random.Generator) -> SiteIndex:
    """One random, self-consistent small site."""
    chain = _chain(rng)
    phases = chain.pop("_phases")
    servers = _servers(rng, phases)  # type: ignore[arg-type]
    services = _services(rng, len(servers["server_ids"]))  # type: ignore[arg-type]
    rt = np.sort(rng.uniform(0.0, 1800.0, 4))[::-1].copy()
    return SiteIndex(**chain, **servers, **services, runtime_target_s=rt)  # type: ignore[arg-type]


def random_state(rng: np.random.Generator, ix: SiteIndex | None = None, *, curves: bool = True) -> PowerState:
    """A random live state of a random (or given) site."""
    ix = ix or random_index(rng)
    n_feed = int((ix.node_kind == 0).sum())
    n_ats, n_ups, n_psu = len(ix.ats_sources), len(ix.ups_node), len(ix.psu_ids)
    n_rl = len(ix.racklet_ids)
    return PowerState(
        index=ix,
        server_power_w=rng.uniform(ix.server_idle_w, ix.server_peak_w),
        feed_available=rng.random(n_feed) < 0.6,
        ats_source=ix.ats_sources[np.arange(n_ats), rng.integers(0, 2, n_ats)] if n_ats else None,
        ups_charge_frac=rng.uniform(0.0, 1.0, n_ups),
        ups_on_battery=rng.random(n_ups) < 0.2,
        service_level_frac=np.where(rng.random(len(ix.service_ids)) < 0.8, 1.0, 0.0),
        psu_available=rng.random(n_psu) < 0.9,
        psu_share_frac=rng.uniform(0.0, 1.0, n_psu) if rng.random() < 0.5 else None,
        efficiency=real_curves() if curves else None,
        racklet_cooling_available_w=rng.uniform(0.0, 1.0, n_rl) * ix.racklet_cooling_capacity_w,
        racklet_leak=rng.random(n_rl) < 0.2,
        rack_inlet_c=rng.uniform(18.0, 45.0, len(ix.rack_ids)),
    )


def random_forecast(rng: np.random.Generator, state: PowerState) -> SiteForecast:
    """A random forecast: upper bounds above the state, failure probabilities, signals."""
    ix = state.index
    n_srv = len(ix.server_ids)
    upper = state.server_power_w * rng.uniform(1.0, 1.6, n_srv)
    return SiteForecast(
        horizon_s=float(rng.uniform(60.0, 3600.0)),
        server_power_point_w=state.server_power_w,
        server_power_upper_w=upper if rng.random() < 0.7 else None,
        psu_failure_prob=rng.random(len(ix.psu_ids)) ** 3,
        server_failure_prob=rng.random(n_srv) ** 4,
        racklet_cooling_failure_prob=rng.random(len(ix.racklet_ids)) ** 3,
        price_per_kwh=rng.uniform(0.05, 0.5, 6),
        carbon_g_per_kwh=rng.uniform(50.0, 600.0, 6),
    )
