from __future__ import annotations

from pathlib import Path

import pytest

from wattwise.act.base import JournalEntry, Phase
from wattwise.control.loop import LatestValues, detect_event
from wattwise.control.pipeline import StoreJournal, StorePipeline
from wattwise.errors import StoreError
from wattwise.model.values import Reading
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.validate import ReadingValidator


class FlakyStore:
    """A real DuckDB store behind a switch that makes writes fail (store down)."""

    def __init__(self, inner: DuckDBStore) -> None:
        self.inner = inner
        self.down = False

    def write(self, batch: ReadingBatch) -> object:
        if self.down:
            raise StoreError("connection refused")
        return self.inner.write(batch)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def _readings(t_s: float, n: int = 3) -> list[Reading]:
    return [Reading(f"dev-{i}", "power_w", 100.0 + i, t_s) for i in range(n)]


def test_store_down_holds_batches_and_loses_nothing(tmp_path: Path) -> None:
    store = FlakyStore(DuckDBStore(tmp_path / "s.duckdb"))
    pipe = StorePipeline(ReadingValidator({f"dev-{i}" for i in range(3)}), store)  # type: ignore[arg-type]
    assert len(pipe.ingest(_readings(1.0), now_s=1.0)) == 3
    store.down = True
    for t in range(2, 32):  # 30 s of store outage
        accepted = pipe.ingest(_readings(float(t)), now_s=float(t))
        assert len(accepted) == 3  # the loop still sees validated readings
    assert pipe.pending_batches == 30
    assert not pipe.store_ok
    store.down = False
    pipe.ingest([], now_s=40.0)
    assert pipe.pending_batches == 0
    assert store.inner.count() == 31 * 3


def test_bad_readings_never_reach_the_store(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    validator = ReadingValidator({"dev-0"})
    pipe = StorePipeline(validator, store)
    bad = [
        Reading("dev-0", "power_w", float("nan"), 1.0),
        Reading("dev-0", "power_w", -5.0, 1.0),
        Reading("ghost", "power_w", 5.0, 1.0),
    ]
    accepted = pipe.ingest([*bad, Reading("dev-0", "power_w", 5.0, 1.0)], now_s=1.0)
    assert [r.value for r in accepted.to_readings()] == [5.0]
    assert store.count() == 1
    assert validator.stats.rejected_total == 3


def test_backlog_bound_drops_oldest_and_counts_it(tmp_path: Path) -> None:
    store = FlakyStore(DuckDBStore(tmp_path / "s.duckdb"))
    store.down = True
    pipe = StorePipeline(ReadingValidator({"dev-0", "dev-1", "dev-2"}), store, max_pending_rows=6)  # type: ignore[arg-type]
    for t in (1.0, 2.0, 3.0):
        assert len(pipe.ingest(_readings(t), t)) == 3  # the loop still gets every validated reading
    assert pipe.dropped_rows == 3
    store.down = False
    pipe.ingest([], 4.0)
    assert sorted({r.t_s for r in store.inner.training_set(0.0, 10.0).to_readings()}) == [2.0, 3.0]


def test_store_journal_round_trip(tmp_path: Path) -> None:
    journal = StoreJournal(DuckDBStore(tmp_path / "j.duckdb"))
    entry = JournalEntry("c1", 5.0, Phase.SENT, "service_shed", "svc-1", None, "power event", "d1", "controller", 3)
    journal.append(entry)
    assert journal.entries() == [entry]


def _view(**values: float) -> LatestValues:
    view = LatestValues()
    view.update_batch(ReadingBatch.from_readings(Reading(*k.split("__"), value=v, t_s=0.0) for k, v in values.items()))  # type: ignore[misc]
    return view


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({"ups-a__on_battery": 0.0}, {"ups-a__on_battery": 1.0}, "ups-a: on_battery"),
        ({"ats-1__ats_source_index": 0.0}, {"ats-1__ats_source_index": 1.0}, "ats-1: ATS transfer"),
        ({"utility-a__source_available": 1.0}, {"utility-a__source_available": 0.0}, "utility-a: source lost"),
        ({"pdu-1__load_frac": 0.5}, {"pdu-1__load_frac": 0.97}, "pdu-1: near limit"),
        ({"pdu-1__breaker_l2_tripped": 0.0}, {"pdu-1__breaker_l2_tripped": 1.0}, "pdu-1: breaker_l2_tripped"),
        ({"utility-a__breaker_tripped": 0.0}, {"utility-a__breaker_tripped": 1.0}, "utility-a: breaker_tripped"),
        ({"psu-1__available": 1.0}, {"psu-1__available": 0.0}, "psu-1: unit down"),
        ({"ups-a__on_battery": 1.0}, {"ups-a__on_battery": 1.0}, None),
        ({"pdu-1__load_frac": 0.5}, {"pdu-1__load_frac": 0.6}, None),
    ],
)
def test_detect_event(before: dict[str, float], after: dict[str, float], expected: str | None) -> None:
    assert detect_event(_view(**before), _view(**after)) == expected


def test_a_unit_the_controller_switched_off_going_down_is_not_an_event() -> None:
    before, after = _view(**{"psu-1__available": 1.0}), _view(**{"psu-1__available": 0.0})
    assert detect_event(before, after, expected={"psu-1"}) is None
    assert detect_event(before, after, expected={"psu-2"}) == "psu-1: unit down"
    # Only the drop it caused is expected: a UPS going on battery is an event whoever is off.
    ups = _view(**{"psu-1__available": 0.0, "ups-a__on_battery": 1.0})
    assert detect_event(before, ups, expected={"psu-1", "ups-a"}) == "ups-a: on_battery"


def test_assembly_expects_the_psus_and_units_behind_outlets_it_switched_off() -> None:
    from wattwise.act.base import Mode
    from wattwise.control.assemble import assemble, outlet_feeds, switched_off_units
    from wattwise.model.clock import SimClock
    from wattwise.model.generate import SiteSpec, generate_site
    from wattwise.model.values import ActionKind

    site = generate_site(SiteSpec(servers=40, servers_per_rack=10, racks_per_hall=2, racklet_racks_per_hall=1, seed=1))
    a = assemble(site, [], DuckDBStore(":memory:"), SimClock(), Mode.ARMED)
    feeds = outlet_feeds(site, a.index)
    server = next(s for s in site.servers if len(s.psus) == 2)
    (psu1, psu2) = server.psus
    assert switched_off_units(a.actuator, feeds) == frozenset()
    a.actuator._state[psu1.input] = (ActionKind.OUTLET_OFF, None, None)
    a.actuator._state["svc-x"] = (ActionKind.SERVICE_SHED, 0.0, None)
    a.actuator._state[psu2.input] = (ActionKind.OUTLET_ON, None, None)
    got = switched_off_units(a.actuator, feeds)
    assert {psu1.input, psu1.id, "svc-x"} <= got
    assert psu2.id not in got and server.id not in got  # its other outlet still feeds it
    a.actuator._state[psu2.input] = (ActionKind.OUTLET_OFF, None, None)
    assert {psu2.id, server.id} <= switched_off_units(a.actuator, feeds)  # dark by command
    # A racklet and the servers on its DC bus are dark once every rectifier's outlet is off.
    racklet = site.racklets[0]
    on_bus = [
        s.id for s in site.servers if not s.psus and s.rack in {r.id for r in site.racks if r.racklet == racklet.id}
    ]
    assert on_bus
    for p in racklet.power.psus[:-1]:
        a.actuator._state[p.input] = (ActionKind.OUTLET_OFF, None, None)
    got = switched_off_units(a.actuator, feeds)
    assert racklet.id not in got and not set(on_bus) & got
    a.actuator._state[racklet.power.psus[-1].input] = (ActionKind.OUTLET_OFF, None, None)
    got = switched_off_units(a.actuator, feeds)
    assert {racklet.id, *on_bus} <= got
    assert a.controller.expected_down() == got


def test_offer_wakes_the_loop_only_for_a_batch_that_shows_an_event() -> None:
    from wattwise.act.base import Mode
    from wattwise.control.assemble import assemble
    from wattwise.model.clock import SimClock
    from wattwise.model.generate import SiteSpec, generate_site

    site = generate_site(SiteSpec(servers=20, servers_per_rack=10, racks_per_hall=2, seed=1))
    c = assemble(site, [], DuckDBStore(":memory:"), SimClock(), Mode.ARMED).controller
    c.latest.update_batch(ReadingBatch.from_readings([Reading("ups-a", "on_battery", 0.0, 0.0)]))
    c.latest.update_batch(ReadingBatch.from_readings([Reading("pdu-1", "load_frac", 0.5, 0.0)]))
    assert not c.offer([Reading("pdu-1", "load_frac", 0.6, 1.0), Reading("srv-1", "power_w", 300.0, 1.0)])
    assert not c._wake.is_set()  # a load change below the limit is telemetry, not an event
    assert c.offer([Reading("pdu-1", "load_frac", 0.6, 1.0), Reading("ups-a", "on_battery", 1.0, 1.0)])
    assert c._wake.is_set()
