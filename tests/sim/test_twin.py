"""The twin end to end: stepping, readings, snapshot, actions, driver contract, outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from wattwise.drivers.base import Driver
from wattwise.model.clock import SimClock
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.loader import load_site
from wattwise.model.metrics import METRICS
from wattwise.model.values import Action, ActionKind
from wattwise.sim.driver import TwinDriver
from wattwise.sim.twin import Twin

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def small_site():  # type: ignore[no-untyped-def]
    return generate_site(SiteSpec(servers=60, servers_per_rack=10, racks_per_hall=3, racklet_racks_per_hall=1, seed=4))


def test_every_example_runs_and_reports_only_canonical_metrics() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        twin = Twin(load_site(path), seed=0)
        twin.run_for(5.0)
        readings = twin.readings()
        assert readings, path
        bad = {r.metric for r in readings} - set(METRICS)
        assert not bad, f"{path.name}: non-canonical metrics {bad}"
        for r in readings:
            spec = METRICS[r.metric]
            assert spec.min_value <= r.value <= spec.max_value, (path.name, r)


def test_power_reaches_feeds_and_services_are_up(small_site) -> None:  # type: ignore[no-untyped-def]
    twin = Twin(small_site, seed=1)
    twin.run_for(30.0)
    snap = twin.snapshot()
    assert snap.it_power_w > 0
    assert snap.feed_load_w.sum() > snap.it_power_w  # conversion losses on the way up
    assert snap.service_up.all()
    assert snap.server_powered.all()
    with pytest.raises(ValueError, match="read-only"):
        snap.server_power_w[0] = 1.0


def test_power_cap_and_throttle_reduce_power(small_site) -> None:  # type: ignore[no-untyped-def]
    twin = Twin(small_site, seed=1)
    twin.step()
    i = int(twin.work.wl_server[np.flatnonzero(twin.work.wl_running)[0]])
    sid = small_site.servers[i].id
    # Drive the server hard so the cap binds.
    twin.work.wl_surge[twin.work.wl_server == i] = 50.0
    twin.mark_dirty()
    twin.step()
    before = float(twin.srv.power_w[i])
    cap = (small_site.servers[i].idle_w + before) / 2
    assert twin.apply(Action(kind=ActionKind.POWER_CAP, target_id=sid, value=cap)).ok
    twin.step()
    assert twin.srv.power_w[i] == pytest.approx(cap)
    assert twin.srv.served_frac[i] < 1.0
    assert twin.apply(Action(kind=ActionKind.POWER_CAP, target_id=sid, value=None)).ok
    assert twin.apply(Action(kind=ActionKind.THROTTLE, target_id=sid, value=0.5)).ok
    twin.step()
    assert twin.srv.util_frac[i] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("action", "needle"),
    [
        (Action(kind=ActionKind.OUTLET_OFF, target_id="nope"), "unknown outlet"),
        (Action(kind=ActionKind.PSU_SETPOINT, target_id="r00002-s1-psu1", value=-5.0), "set-point"),
        (Action(kind=ActionKind.THROTTLE, target_id="svc-0000", value=0.33), "throttle levels"),
        (Action(kind=ActionKind.WORKLOAD_MIGRATE, target_id="wl-000000", dest_id="ghost"), "unknown server"),
        (Action(kind=ActionKind.ATS_TRANSFER, target_id="ats-h1-a", dest_id="utility-b"), "sources"),
        (Action(kind=ActionKind.COOLING_SETPOINT, target_id="r00001", value=99.0), "set-point"),
        (Action(kind=ActionKind.PARTITION_MOVE, target_id="p0-0", dest_id="ep-9999"), "unknown processor"),
    ],
)
def test_invalid_actions_are_refused_with_a_reason(small_site, action: Action, needle: str) -> None:  # type: ignore[no-untyped-def]
    twin = Twin(small_site, seed=0)
    result = twin.apply(action)
    assert not result.ok
    assert needle in result.message
    assert twin.outcome().actions_refused == 1


def test_outlet_off_drops_only_that_psu_and_2n_server_stays_up(small_site) -> None:  # type: ignore[no-untyped-def]
    twin = Twin(small_site, seed=0)
    server = next(s for s in small_site.servers if len(s.psus) == 2)
    outlet = server.psus[0].input
    assert twin.apply(Action(kind=ActionKind.OUTLET_OFF, target_id=outlet)).ok
    twin.step()
    i = twin.index["server"][server.id]
    p0, p1 = (twin.index["psu"][p.id] for p in server.psus)
    assert twin.srv.powered[i]
    assert twin.psu.output_w[p0] == 0.0
    assert twin.psu.output_w[p1] == pytest.approx(twin.srv.power_w[i])
    assert twin.apply(Action(kind=ActionKind.OUTLET_OFF, target_id=server.psus[1].input)).ok
    twin.step()
    assert not twin.srv.powered[i]
    assert twin.apply(Action(kind=ActionKind.OUTLET_ON, target_id=outlet)).ok
    twin.step()
    assert twin.srv.powered[i]
    assert twin.srv.boot_left_s[i] > 0  # boots before its workloads run again


def test_psu_setpoint_shifts_share_and_hot_standby(small_site) -> None:  # type: ignore[no-untyped-def]
    twin = Twin(small_site, seed=0)
    server = next(s for s in small_site.servers if len(s.psus) == 2)
    a, b = (twin.index["psu"][p.id] for p in server.psus)
    twin.step()
    assert twin.psu.output_w[a] == pytest.approx(twin.psu.output_w[b])
    assert twin.apply(Action(kind=ActionKind.PSU_SETPOINT, target_id=server.psus[1].id, value=0.0)).ok
    twin.step()
    assert twin.psu.output_w[b] == 0.0
    assert twin.psu.input_w[b] > 0  # a hot-standby unit still has its no-load loss
    twin.psu.failed[a] = True  # the active unit dies: standby takes the whole bus
    twin.step()
    i = twin.index["server"][server.id]
    assert twin.srv.powered[i]
    assert twin.psu.output_w[b] == pytest.approx(twin.srv.power_w[i])


def test_service_shed_and_restore(small_site) -> None:  # type: ignore[no-untyped-def]
    twin = Twin(small_site, seed=0)
    sid = small_site.services[-1].id
    k = twin.index["service"][sid]
    assert twin.apply(Action(kind=ActionKind.SERVICE_SHED, target_id=sid)).ok
    twin.step()
    assert not twin.work.svc_up[k]
    assert not twin.work.wl_running[twin.work.wl_service == k].any()
    assert twin.apply(Action(kind=ActionKind.SERVICE_RESTORE, target_id=sid)).ok
    twin.run_for(twin.params.workload_restart_s + 2)
    assert twin.work.svc_up[k]


def test_migration_is_make_before_break(small_site) -> None:  # type: ignore[no-untyped-def]
    twin = Twin(small_site, seed=0)
    twin.step()
    w = int(np.flatnonzero(twin.work.wl_migratable & twin.work.wl_running)[0])
    wid = small_site.workloads[w].id
    src = int(twin.work.wl_server[w])
    dest = (src + 7) % len(small_site.servers)
    before = float(twin.srv.util_frac[dest])
    result = twin.apply(Action(kind=ActionKind.WORKLOAD_MIGRATE, target_id=wid, dest_id=small_site.servers[dest].id))
    assert result.ok, result.message
    twin.step()
    assert twin.work.wl_server[w] == src
    assert twin.srv.util_frac[dest] > before - 0.2  # the copy runs on the destination too
    twin.run_for(float(twin.work.wl_mig_left_s[w]) + 2)
    assert twin.work.wl_server[w] == dest
    out = twin.outcome()
    assert out.migrations == 1
    assert out.migration_energy_j > 0
    assert out.migration_s == pytest.approx(
        twin.params.migration_base_s + small_site.workloads[w].state_gib / 1.25, abs=1.5
    )


def test_twin_driver_satisfies_the_driver_protocol(small_site) -> None:  # type: ignore[no-untyped-def]
    twin = Twin(small_site, seed=0)
    clock = SimClock()
    driver = TwinDriver(twin, clock=clock)
    assert isinstance(driver, Driver)
    assert all(driver.supports(k) for k in ActionKind)

    async def go() -> None:
        await clock.sleep_s(10.0)
        readings = await driver.read()
        assert twin.t_s == pytest.approx(10.0)
        assert {r.t_s for r in readings} == {twin.t_s}
        res = await driver.apply(Action(kind=ActionKind.NODE_CORDON, target_id=small_site.servers[0].id))
        assert res.ok
        await driver.close()

    asyncio.run(go())


def _shed_and_power_off(twin: Twin, t_s: float) -> None:
    """A simple power-event policy: on battery, shed all but the critical closure and power off idle servers."""
    snap = twin.snapshot()
    if not snap.ups_on_battery.all() or getattr(twin, "_test_shed", False):
        return
    keep: set[str] = set()
    for s in twin.site.services:
        if s.tier.value == "critical":
            keep |= twin.graph.dependency_closure(s.id)
    for s in twin.site.services:
        if s.id not in keep:
            assert twin.apply(Action(kind=ActionKind.SERVICE_SHED, target_id=s.id)).ok
    kept = np.isin(twin.work.wl_service, [twin.index["service"][k] for k in keep])
    busy = set(twin.work.wl_server[kept].tolist()) | set(twin.work.ep_server.tolist())
    for i, server in enumerate(twin.site.servers):
        if i not in busy:
            for p in server.psus:
                assert twin.apply(Action(kind=ActionKind.OUTLET_OFF, target_id=p.input)).ok
    twin._test_shed = True  # type: ignore[attr-defined]


def test_a_good_power_event_policy_beats_doing_nothing() -> None:
    from wattwise.sim.runner import run_scenario
    from wattwise.sim.scenario import parse_scenario

    sc = parse_scenario(
        {
            "name": "outage",
            "generate": {"servers": 60, "servers_per_rack": 10, "racks_per_hall": 6, "racklet_racks_per_hall": 0},
            "duration_s": 2400,
            "overrides": {"ups-h1-a": {"battery_wh": 2500}, "ups-h1-b": {"battery_wh": 2500}},
            "events": [
                {"at_s": 60, "kind": "generator_fail", "target": "generator-a"},
                {"at_s": 60, "kind": "generator_fail", "target": "generator-b"},
                {"at_s": 60, "kind": "feed_loss", "target": "utility-a"},
                {"at_s": 60, "kind": "feed_loss", "target": "utility-b"},
            ],
        }
    )
    idle = run_scenario(sc).outcome
    managed = run_scenario(sc, _shed_and_power_off, hook_every_s=5.0).outcome
    assert idle.critical_availability_frac < 0.9  # batteries run flat with everything on
    assert managed.critical_availability_frac == 1.0
    assert managed.battery_left_wh > idle.battery_left_wh
    assert managed.priority_inversion_s == 0.0
    # the utility outage runs from 60 s to the end: its seconds are counted apart, the same for both runs
    assert idle.outage_s == managed.outage_s == pytest.approx(2400 - 60, abs=2.0)
    assert managed.outage_critical_availability_frac == 1.0
    # everything was up for the first minute, so the outage share is lower than the whole-run share
    assert idle.outage_critical_availability_frac < idle.critical_availability_frac


def test_outage_seconds_need_every_utility_feed_lost() -> None:
    from wattwise.sim.runner import run_scenario
    from wattwise.sim.scenario import parse_scenario

    sc = parse_scenario(
        {
            "name": "one-side",
            "generate": {"servers": 20, "servers_per_rack": 10, "racks_per_hall": 2, "racklet_racks_per_hall": 0},
            "duration_s": 600,
            "events": [{"at_s": 60, "kind": "feed_loss", "target": "utility-a", "duration_s": 300}],
        }
    )
    out = run_scenario(sc).outcome
    assert out.outage_s == 0.0
    assert out.outage_availability_by_tier == {"critical": 1.0, "high": 1.0, "medium": 1.0, "low": 1.0}


def test_cooling_actions_change_racklet_capacity_and_readings(small_site) -> None:  # type: ignore[no-untyped-def]
    twin = Twin(small_site, seed=0)
    rl = small_site.racklets[0].id

    def cap() -> float:
        return next(
            r.value for r in twin.readings(kinds=["racklet"]) if r.device_id == rl and r.metric == "cooling_capacity_w"
        )

    full = cap()
    assert twin.apply(Action(kind=ActionKind.COOLING_SETPOINT, target_id=rl, dest_id="fan_speed", value=0.4)).ok
    assert cap() == pytest.approx(full / 2)
    assert twin.apply(Action(kind=ActionKind.COOLING_ISOLATE, target_id=rl)).ok
    assert cap() == 0.0
    module = {r.metric: r.value for r in twin.readings(kinds=["racklet"]) if r.device_id == rl}
    assert module["output_power_w"] > 0
    assert module["input_power_w"] > module["output_power_w"]
    assert module["available"] == 1.0


def test_outlet_cycle_and_scheduled_actions(small_site) -> None:  # type: ignore[no-untyped-def]
    twin = Twin(small_site, seed=0)
    server = next(s for s in small_site.servers if len(s.psus) == 2)
    outlet = server.psus[0].input
    o = twin.index["outlet"][outlet]
    p0 = twin.index["psu"][server.psus[0].id]
    twin.psu.ocp_tripped[p0] = True
    assert twin.apply(Action(kind=ActionKind.OUTLET_CYCLE, target_id=outlet)).ok
    twin.step()
    assert not twin.ch.outlet_on[o]
    twin.run_for(6)
    assert twin.ch.outlet_on[o]
    assert not twin.psu.ocp_tripped[p0]  # power-cycling the input clears the latch
    assert twin.psu.output_w[p0] > 0
    later = Action(kind=ActionKind.SERVICE_SHED, target_id=small_site.services[-1].id, not_before_s=twin.t_s + 10)
    assert twin.apply(later).message == "scheduled"
    k = twin.index["service"][later.target_id]
    twin.run_for(5)
    assert not twin.work.svc_shed[k]
    twin.run_for(6)
    assert twin.work.svc_shed[k]


def test_concurrent_migrations_from_one_server_share_its_bandwidth(small_site) -> None:  # type: ignore[no-untyped-def]
    twin = Twin(small_site, seed=0)
    twin.step()
    ws = twin.work
    counts = np.bincount(ws.wl_server[ws.wl_migratable & ws.wl_running], minlength=len(small_site.servers))
    src = int(np.argmax(counts))
    assert counts[src] >= 2
    movers = np.flatnonzero((ws.wl_server == src) & ws.wl_migratable & ws.wl_running)[:2]
    ws.wl_state_gib[movers] = 10.0
    dest = small_site.servers[(src + 5) % len(small_site.servers)].id
    for w in movers:
        assert twin.apply(
            Action(kind=ActionKind.WORKLOAD_MIGRATE, target_id=small_site.workloads[w].id, dest_id=dest)
        ).ok
    alone_s = twin.params.migration_base_s + 10.0 / twin.params.migration_bw_gib_per_s
    twin.run_for(alone_s + 1)
    assert (ws.wl_mig_dest[movers] >= 0).all()  # sharing the NIC: not done in the time one would take
    twin.run_for(alone_s + 2)
    assert (ws.wl_server[movers] == twin.index["server"][dest]).all()
    assert twin.outcome().migrations == 2
