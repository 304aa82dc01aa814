"""Each physical model of the twin against the real data it came from (shared/datasets)."""

from __future__ import annotations

import csv
import gzip
import re

import numpy as np
import pytest
from tests.conftest import DATASETS, need

from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.site import Ats, Feed, Outlet, Pdu, Psu, Rack, Server, Service, Site, Ups, Workload
from wattwise.sim import chain, power
from wattwise.sim.curves import interp_rows, psu_curves, server_curve_w, specpower_curves_w
from wattwise.sim.params import TwinParams
from wattwise.sim.readings import ups_status_words
from wattwise.sim.traces import smd_shapes, trace_bank
from wattwise.sim.twin import Twin


def _dataset(*parts: str):  # type: ignore[no-untyped-def]
    path = DATASETS.joinpath(*parts)
    need(path.exists(), f"dataset file {path} is missing")
    return path


# ---- server power: SPECpower ---------------------------------------------------------------
def _spec_rows() -> list[dict[str, str]]:
    with _dataset("specpower_ssj2008", "power_curves_11pt.csv").open() as f:
        return list(csv.DictReader(f))


def test_server_power_at_each_load_level_equals_its_specpower_point() -> None:
    rows = _spec_rows()
    cols = ["watts_active_idle"] + [f"watts_{k}pct" for k in range(10, 101, 10)]
    src = np.array([[float(r[c]) for c in cols] for r in rows])
    assert np.array_equal(specpower_curves_w(), src)  # the packaged copy is the source, unchanged
    p = TwinParams()
    for k, curve in enumerate(src):
        srv_curve = server_curve_w(curve[0], curve[10], f"specpower-{k}", None)
        for level in (0.1, 0.5, 0.8):  # the SPEC points themselves
            got = interp_rows(srv_curve[None, :], np.array([level]))[0]
            assert got == pytest.approx(curve[round(level * 10)], rel=1e-9)
    # Through the twin's own server step (utilisation → power), at 50 % load:
    twin = Twin(_one_server_site(idle_w=float(src[3, 0]), peak_w=float(src[3, 10]), model="specpower-3"), seed=0)
    twin.srv.throttle_frac[:] = 1.0
    power.server_power(twin.srv, np.array([0.5]), p)
    assert twin.srv.power_w[0] == pytest.approx(src[3, 5])


def test_specpower_shape_between_points_is_piecewise_linear_and_monotone() -> None:
    for curve in specpower_curves_w():
        u = np.linspace(0, 1, 101)
        p = interp_rows(np.repeat(curve[None, :], len(u), axis=0), u)
        assert np.all(np.diff(p) >= -1e-9)
        assert p[0] == curve[0]
        assert p[-1] == curve[-1]


def test_power_cap_reduces_power_and_throughput() -> None:
    twin = Twin(_one_server_site(idle_w=100.0, peak_w=300.0, model=""), seed=0)
    p = TwinParams()
    twin.srv.cap_w[:] = 200.0
    power.server_power(twin.srv, np.array([1.0]), p)
    assert twin.srv.power_w[0] == pytest.approx(200.0)
    assert twin.srv.served_frac[0] == pytest.approx(0.5)


# ---- PSU efficiency: 80 PLUS -----------------------------------------------------------------
def test_psu_loss_at_20_50_100_pct_matches_its_80plus_curve() -> None:
    with _dataset("psu_efficiency", "80plus_230v_internal_redundant_thresholds.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows
    for r in rows:
        name = f"80plus_{r['level'].lower()}"
        load = float(r["load_pct"]) / 100.0
        eff = float(r["min_efficiency_pct"]) / 100.0
        site = _one_server_site(idle_w=50.0, peak_w=500.0, model="", psu_eff=name, psu_rating_w=1000.0)
        twin = Twin(site, seed=0)
        psu = twin.psu
        psu.alive[:] = True
        psu.output_w = np.array([load * 1000.0])
        power.psu_input(psu, 1.0, TwinParams())
        loss_w = psu.input_w[0] - psu.output_w[0]
        assert loss_w == pytest.approx(load * 1000.0 * (1.0 / eff - 1.0), rel=1e-9), (name, load)


def test_psu_efficiency_falls_at_light_load_like_the_measured_pfe_curve() -> None:
    with _dataset("psu_efficiency", "psu_efficiency_curve_pfe.csv").open() as f:
        pfe = [(float(r["load_W"]) / 600.0, float(r["efficiency_%"]) / 100.0) for r in csv.DictReader(f)]
    loads, effs = psu_curves()["80plus_platinum"]
    # The measured curve loses efficiency below 20 % load; so must every 80 PLUS curve of the twin.
    measured_drop = np.interp(0.2, *zip(*pfe, strict=True)) - pfe[0][1]
    assert measured_drop > 0
    assert np.interp(0.2, loads, effs) - np.interp(0.1, loads, effs) > 0


def test_psu_degradation_raises_ripple_and_temperature_and_ends_in_failure() -> None:
    twin = Twin(_one_server_site(idle_w=100.0, peak_w=300.0, model=""), seed=0)
    twin.psu.degrade_rate_per_s[0] = 0.01
    ripple, temp, eff = [], [], []
    for _ in range(200):
        twin.step()
        temp_c, ripple_v = twin.psu_condition()
        ripple.append(ripple_v[0])
        temp.append(temp_c[0])
        eff.append(twin.psu.efficiency_frac[0])
        if twin.psu.failed[0]:
            break
    assert twin.psu.failed[0]
    assert ripple[-2] > ripple[0] * 5
    assert temp[-2] > temp[0] + 10
    assert eff[-2] < eff[0] - 0.05
    twin.step()
    assert twin.psu.output_w[1] == pytest.approx(twin.srv.power_w[0])  # the partner carries the bus


def test_psu_over_current_latches_off() -> None:
    twin = Twin(_one_server_site(idle_w=100.0, peak_w=300.0, model="", psu_rating_w=200.0), seed=0)
    twin.psu.failed[1] = True  # one PSU left; the server needs more than 1.2 × 200 W at full load
    twin.work.wl_surge[:] = 100.0
    twin.mark_dirty()
    twin.run_for(3)
    assert twin.psu.ocp_tripped[0]
    assert not twin.srv.powered[0]
    assert twin.outcome().psu_ocp_trips == 1


# ---- UPS: runtime against the nut-ddl dumps ------------------------------------------------
def _nut_dumps() -> list[dict[str, str]]:
    root = _dataset("nut_ddl_device_dumps", "dumps")
    out = []
    for path in sorted(root.rglob("*.dev")):
        vals: dict[str, str] = {}
        for line in path.read_text(errors="replace").splitlines():
            m = re.match(r"^([a-z0-9_.]+):\s*(.+?)\s*$", line)
            if m:
                vals.setdefault(m.group(1), m.group(2))
        out.append(vals)
    return out


def _num(v: str | None) -> float | None:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def test_ups_runtime_at_half_load_is_within_the_range_of_real_dumps() -> None:
    runtimes = []
    for d in _nut_dumps():
        load, rt, charge = _num(d.get("ups.load")), _num(d.get("battery.runtime")), _num(d.get("battery.charge"))
        w = _num(d.get("ups.realpower.nominal")) or (0.6 * (_num(d.get("ups.power.nominal")) or 0.0))
        if load and rt and charge and 40 <= load <= 60 and charge >= 90 and 300 <= w <= 3000 and 0 < rt < 1e5:
            runtimes.append(rt)
    assert len(runtimes) >= 5
    # A small UPS of that size: 1000 W, battery sized for 5 min at full load (datasheet typical 3-7 min).
    twin = Twin(
        _one_server_site(idle_w=100.0, peak_w=300.0, model="", ups_w=1000.0, battery_wh=1000.0 * 5 / 60), seed=0
    )
    twin.ch.ups_output_w = np.array([500.0])
    rt_half = float(chain.ups_runtime_s(twin.ch, twin.params)[0])
    assert min(runtimes) <= rt_half <= max(runtimes)
    twin.ch.ups_output_w = np.array([250.0])
    assert float(chain.ups_runtime_s(twin.ch, twin.params)[0]) > 2 * rt_half  # Peukert: better than 1/load


def test_ups_discharge_matches_its_runtime_estimate_and_reports_nut_status() -> None:
    site = _one_server_site(idle_w=200.0, peak_w=400.0, model="", ups_w=1000.0, battery_wh=50.0)
    twin = Twin(site, seed=0)
    twin.work.wl_surge[:] = 100.0  # saturate: constant full-load power, so the estimate holds
    twin.mark_dirty()
    twin.run_for(5)
    estimate = float(chain.ups_runtime_s(twin.ch, twin.params)[0])
    twin.ch.feed_available[0] = False
    seen: set[str] = set()
    t0 = twin.t_s
    while twin.srv.powered[0] and twin.t_s - t0 < 10 * estimate:
        twin.step()
        seen.update(ups_status_words(twin))
    lasted = twin.t_s - t0
    assert lasted == pytest.approx(estimate, rel=0.02)
    vocabulary = {w for d in _nut_dumps() for w in d.get("ups.status", "").split("#")[0].split()}
    for words in seen:
        assert set(words.split()) <= vocabulary, f"{words!r} uses a word no real UPS reports"
    assert {"OB DISCHRG", "OB DISCHRG LB"} <= seen


def test_ups_bridges_an_ats_transfer_but_a_bare_pdu_drops() -> None:
    site = _one_server_site(idle_w=100.0, peak_w=300.0, model="", with_ats=True)
    twin = Twin(site, seed=0)
    twin.run_for(3)
    twin.ch.feed_available[0] = False
    twin.step()
    twin.step()
    assert twin.srv.powered[0]
    assert twin.ch.ats_active[0] == 1
    assert twin.outcome().battery_discharged_j > 0


# ---- breakers: time-current curve ------------------------------------------------------------
@pytest.mark.parametrize(("ratio", "lo_s", "hi_s"), [(2.0, 40.0, 80.0), (1.3, 200.0, 400.0), (9.0, 0.0, 1.0)])
def test_breaker_trip_time_follows_its_curve(ratio: float, lo_s: float, hi_s: float) -> None:
    p = TwinParams()
    twin = Twin(_one_server_site(idle_w=100.0, peak_w=300.0, model=""), seed=0)
    ch = twin.ch
    t = 0.0
    while not ch.phase_tripped[0, 0] and t < 2000:
        ch.phase_w = np.zeros_like(ch.phase_w)
        ch.phase_w[0, 0] = ratio * ch.phase_rated_a[0, 0] * ch.phase_voltage_v[0, 0]
        chain.protect(ch, twin.feed_capacity_w * 100, 1.0, p)
        t += 1.0
    assert lo_s <= t <= hi_s


def test_breaker_never_trips_at_rated_current() -> None:
    p = TwinParams()
    twin = Twin(_one_server_site(idle_w=100.0, peak_w=300.0, model=""), seed=0)
    ch = twin.ch
    for _ in range(5000):
        ch.phase_w = np.zeros_like(ch.phase_w)
        ch.phase_w[0, 0] = 1.0 * ch.phase_rated_a[0, 0] * ch.phase_voltage_v[0, 0]
        chain.protect(ch, twin.feed_capacity_w * 100, 1.0, p)
    assert not ch.phase_tripped.any()


# ---- thermal ----------------------------------------------------------------------------------
def test_inlet_follows_a_first_order_response_and_servers_throttle_then_trip() -> None:
    site = generate_site(SiteSpec(servers=24, servers_per_rack=12, racks_per_hall=2, racklet_racks_per_hall=1, seed=2))
    twin = Twin(site, seed=0)
    twin.run_for(10)
    rl = 0
    c = twin.cool
    rack = int(np.flatnonzero(c.rack_racklet == rl)[0])
    c.rl_capacity_w[rl] = 0.8 * c.rack_heat_w[rack]  # cooling now covers 80 % of the heat (no throttling yet)
    start = c.rack_inlet_c[rack]
    twin.run_for(twin.params.thermal_tau_s)
    heat = c.rack_heat_w[rack]
    target = c.rack_setpoint_c[rack] + twin.params.thermal_rise_c * (heat - c.rl_capacity_w[rl]) / c.rl_capacity_w[rl]
    frac = (c.rack_inlet_c[rack] - start) / (target - start)
    assert 0.5 < frac < 0.75  # 1 − e⁻¹ ≈ 0.63 after one time constant (heat drifts with the trace)
    c.rl_capacity_w[rl] = 0.3 * c.rack_heat_w[rack]
    twin.run_for(600)
    assert twin.outcome().thermal_throttle_s > 0 or twin.outcome().thermal_trips > 0


# ---- workload traces and anomaly shapes --------------------------------------------------------
def test_packaged_traces_are_rows_of_the_source_traces() -> None:
    with gzip.open(_dataset("workload_planetlab_vm_cpu", "planetlab_cpu_5min.csv.gz"), "rt") as f:
        src = list(csv.reader(f))[1:]
    bank = trace_bank()
    picks = np.linspace(0, len(src) - 1, bank.n_planetlab).astype(int)
    for k in (0, 17, bank.n_planetlab - 1):
        row = np.array([float(x) for x in src[picks[k]][2:]]) / 100.0
        assert np.array_equal(bank.cpu_frac[k], row)


def test_workload_demand_has_its_cpu_frac_as_long_run_mean() -> None:
    site = generate_site(SiteSpec(servers=40, servers_per_rack=10, racks_per_hall=2, seed=1))
    twin = Twin(site, seed=0, record_timeline=False)
    total = np.zeros(len(site.workloads))
    n = 0
    for _ in range(288):
        twin.step(300.0)
        total += twin.work.wl_demand_frac
        n += 1
    mean = total / n
    cpu = twin.work.wl_cpu_frac
    # The 3× cap trims bursty traces, so the mean can only fall short of cpu_frac.
    assert np.median(mean / cpu) == pytest.approx(1.0, abs=0.15)
    assert np.all(mean <= cpu * 1.0001)


def test_smd_shapes_are_windows_of_the_source_machine_data() -> None:
    shapes = smd_shapes()
    assert len(shapes) >= 40
    with gzip.open(_dataset("smd_server_machine", "data", "machine-1-6_test.csv.gz"), "rt") as f:
        rows = list(csv.reader(f))[1:]
    first = (_dataset("smd_server_machine", "interpretation_label", "machine-1-6.txt")).read_text().splitlines()[0]
    a = int(first.split("-")[0])
    lo = max(0, a - 20)
    assert shapes[0][0, 0] == pytest.approx(float(rows[lo][1]), abs=1e-4)
    assert shapes[0][:, 3].max() == 1.0


def test_paused_processor_misses_heartbeats_and_gray_one_fails() -> None:
    site = generate_site(SiteSpec(servers=40, servers_per_rack=10, racks_per_hall=2, event_processors=3, seed=1))
    twin = Twin(site, seed=0)
    ws = twin.work
    ws.ep_mode[0], ws.ep_severity[0], ws.ep_until_s[0] = 2, 0.5, 300.0
    ws.ep_mode[1], ws.ep_severity[1], ws.ep_until_s[1] = 3, 0.9, 200.0
    gaps = []
    for _ in range(250):
        twin.step()
        gaps.append(ws.ep_gap_s[0])
    assert max(gaps) >= 10.0
    assert ws.ep_failed[1]
    assert not ws.ep_failed[2]
    assert twin.outcome().processor_failures == 1


# ---- a tiny hand-built site ---------------------------------------------------------------------
def _one_server_site(
    *,
    idle_w: float,
    peak_w: float,
    model: str,
    psu_eff: str = "80plus_platinum",
    psu_rating_w: float = 800.0,
    ups_w: float = 10_000.0,
    battery_wh: float = 2000.0,
    with_ats: bool = False,
) -> Site:
    feeds = [Feed(id="grid", capacity_w=50_000.0)]
    ats: list[Ats] = []
    ups_input = "grid"
    if with_ats:
        feeds.append(Feed(id="grid-2", capacity_w=50_000.0))
        ats = [Ats(id="ats", sources=("grid", "grid-2"), preferred_source="grid", capacity_w=50_000.0)]
        ups_input = "ats"
    return Site(
        id="one",
        feeds=tuple(feeds),
        ats=tuple(ats),
        ups=(Ups(id="ups", input=ups_input, capacity_w=ups_w, capacity_va=ups_w / 0.9, battery_wh=battery_wh),),
        pdus=(Pdu(id="pdu", input="ups", breaker_a=16.0, outlets=(Outlet(id="o1"), Outlet(id="o2"))),),
        racks=(Rack(id="rack"),),
        servers=(
            Server(
                id="s1",
                rack="rack",
                idle_w=idle_w,
                peak_w=peak_w,
                model=model,
                psus=(
                    Psu(id="p1", input="o1", rating_w=psu_rating_w, efficiency=psu_eff),
                    Psu(id="p2", input="o2", rating_w=psu_rating_w, efficiency=psu_eff),
                ),
            ),
        ),
        services=(Service(id="svc", tier="critical"),),
        workloads=(Workload(id="w1", service="svc", server="s1", cpu_frac=0.5, trace="planetlab:3"),),
    )


def test_server_memory_follows_google_memory_traces() -> None:
    from wattwise.sim.readings import SERVER_MEMORY_GIB, SERVER_OS_GIB, server_memory_frac

    site = generate_site(SiteSpec(servers=40, servers_per_rack=10, racks_per_hall=2, seed=1))
    twin = Twin(site, seed=0, record_timeline=False)
    bank = twin.bank
    twin.work.wl_row = bank.n_planetlab + np.arange(len(site.workloads)) % (len(bank.cpu_frac) - bank.n_planetlab)
    series = []
    for _ in range(96):
        twin.step(900.0)
        series.append(server_memory_frac(twin))
    mem = np.array(series)
    assert mem.min() >= 0.0
    assert mem.max() <= 1.0
    busy = np.bincount(twin.work.wl_server, minlength=len(site.servers)) > 0
    assert np.all(mem[:, busy].std(axis=0) > 0)  # the traces move memory over the day
    gib = np.bincount(twin.work.wl_server, weights=twin.wl_memory_gib, minlength=len(site.servers))
    expected = (gib + SERVER_OS_GIB) / SERVER_MEMORY_GIB
    assert np.median(mem.mean(axis=0)[busy] / expected[busy]) == pytest.approx(1.0, abs=0.2)
