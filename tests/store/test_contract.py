"""One contract suite for every TimeSeriesStore backend (DuckDB file and real PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from tests.store.conftest import StoreFactory

from wattwise.errors import StoreError
from wattwise.store.base import JournalEntry, TimeSeriesStore
from wattwise.store.export import export_training_parquet
from wattwise.store.sql import LATEST_VERSION
from wattwise.telemetry.batch import ReadingBatch

T0_S = 1_699_999_200.0  # a multiple of 3600 s: buckets align with the epoch


def _series(
    device: str, n: int, seed: int, step_s: float = 1.0, tags: tuple[tuple[str, str], ...] = ()
) -> ReadingBatch:
    rng = np.random.default_rng(seed)
    return ReadingBatch.from_columns(
        [device] * n, ["power_w"] * n, rng.uniform(100.0, 900.0, n), T0_S + np.arange(n) * step_s, tags=[tags] * n
    )


def test_is_a_store_with_current_schema(store_factory: StoreFactory) -> None:
    store = store_factory()
    assert isinstance(store, TimeSeriesStore)
    assert store.schema_version() == LATEST_VERSION
    store.write(_series("ups-a", 10, 1))
    store.close()
    again = store_factory()  # reopening re-runs no migration and keeps the data
    assert again.schema_version() == LATEST_VERSION
    assert again.count() == 10


def test_duplicates_are_skipped_and_counted_per_device(store: TimeSeriesStore) -> None:
    first = store.write(_series("ups-a", 50, 1))
    assert first.inserted == 50
    assert dict(first.duplicates) == {}
    mixed = ReadingBatch.concat([_series("ups-a", 20, 1), _series("ups-b", 5, 2)])
    again = store.write(mixed)
    assert again.inserted == 5
    assert dict(again.duplicates) == {"ups-a": 20}
    assert store.count() == 55


def test_latest_is_newest_per_device_and_metric_even_if_written_late(store: TimeSeriesStore) -> None:
    a = _series("ups-a", 30, 3)
    store.write(a.take(np.arange(10, 30)))
    store.write(a.take(np.arange(0, 10)))  # older readings arriving late must not win
    store.write(_series("pdu-1", 5, 4))
    latest = {(r.device_id, r.metric): r for r in store.latest()}
    assert latest[("ups-a", "power_w")].value == pytest.approx(a.value[-1])
    assert latest[("ups-a", "power_w")].t_s == a.t_s[-1]
    assert [r.device_id for r in store.latest(device_ids=["pdu-1"])] == ["pdu-1"]
    assert store.latest(metrics=["voltage_v"]) == []


def test_range_downsamples_min_mean_max(store: TimeSeriesStore) -> None:
    s = _series("ups-a", 600, 5)
    store.write(s)
    buckets = store.range("ups-a", "power_w", T0_S, T0_S + 600, 60.0)
    assert len(buckets) == 10
    for i, b in enumerate(buckets):
        chunk = s.value[i * 60 : (i + 1) * 60]
        assert b.t_s == T0_S + i * 60
        assert (b.min_value, b.max_value, b.count) == (chunk.min(), chunk.max(), 60)
        assert b.mean_value == pytest.approx(chunk.mean())
    with pytest.raises(StoreError):
        store.range("ups-a", "power_w", T0_S, T0_S + 1, 0.0)


def test_aggregate_by_tag(store: TimeSeriesStore) -> None:
    store.write(_series("srv-1", 100, 6, tags=(("application", "web"), ("feed", "A"))))
    store.write(_series("srv-2", 100, 7, tags=(("application", "web"), ("feed", "B"))))
    store.write(_series("srv-3", 100, 8, tags=(("application", "batch"), ("feed", "B"))))
    by_app = {a.tag_value: a for a in store.aggregate_by_tag("power_w", "application", T0_S, T0_S + 100)}
    assert set(by_app) == {"web", "batch"}
    assert (by_app["web"].count, by_app["web"].device_count) == (200, 2)
    web = np.concatenate([_series("srv-1", 100, 6).value, _series("srv-2", 100, 7).value])
    assert by_app["web"].mean_value == pytest.approx(web.mean())
    by_feed = {a.tag_value: a for a in store.aggregate_by_tag("power_w", "feed", T0_S, T0_S + 100)}
    assert {k: a.device_count for k, a in by_feed.items()} == {"A": 1, "B": 2}
    feed_b_w = _series("srv-2", 100, 7).value.mean() + _series("srv-3", 100, 8).value.mean()
    assert by_feed["B"].sum_of_device_means == pytest.approx(feed_b_w)
    with pytest.raises(StoreError):
        store.aggregate_by_tag("power_w", "no_such_tag", T0_S, T0_S + 1)


def test_training_set_round_trips_readings_and_tags(store: TimeSeriesStore) -> None:
    tags = (("application", "web"), ("custom", "x"), ("os", "linux"))
    s = _series("srv-1", 40, 9, tags=tags)
    store.write(s)
    out = store.training_set(T0_S + 10, T0_S + 20)
    assert len(out) == 10
    assert out.to_readings() == s.take(np.arange(10, 20)).to_readings()
    assert len(store.training_set(T0_S, T0_S + 100, metrics=["voltage_v"])) == 0


def test_retention_rolls_up_old_data_and_keeps_the_down_sampled_view(store: TimeSeriesStore) -> None:
    s = _series("ups-a", 1200, 10)
    store.write(s)
    before = store.range("ups-a", "power_w", T0_S, T0_S + 1200, 300.0)
    now_s = T0_S + 1200
    # keep 10 min raw; older goes into 60 s roll-ups (split mid-bucket on purpose: 630 s)
    res = store.apply_retention(now_s, raw_keep_s=570.0, rollup_step_s=60.0, rollup_keep_s=1e9)
    assert res.deleted_raw == 630
    assert res.rolled_up_buckets == 11
    assert store.count() == 570
    res2 = store.apply_retention(now_s + 30, raw_keep_s=570.0, rollup_step_s=60.0, rollup_keep_s=1e9)
    assert res2.deleted_raw == 30  # the rest of the split bucket merges into the same roll-up
    after = store.range("ups-a", "power_w", T0_S, T0_S + 1200, 300.0)
    assert [(b.t_s, b.min_value, b.max_value, b.count) for b in after] == [
        (b.t_s, b.min_value, b.max_value, b.count) for b in before
    ]
    assert [b.mean_value for b in after] == pytest.approx([b.mean_value for b in before])
    # roll-ups older than their own retention go away
    gone = store.apply_retention(now_s, raw_keep_s=570.0, rollup_step_s=60.0, rollup_keep_s=now_s - (T0_S + 300))
    assert gone.deleted_rollups == 5
    assert store.range("ups-a", "power_w", T0_S, T0_S + 300, 300.0) == []


def test_journal_appends_in_time_order_and_is_idempotent(store: TimeSeriesStore) -> None:
    planned = JournalEntry("c1", 10.0, "planned", "outlet_off", "pdu-1.o3", None, "overload", "d1", "ctl-a", 7)
    sent = JournalEntry("c1", 11.0, "sent", "outlet_off", "pdu-1.o3", None, "overload", "d1", "ctl-a", 7)
    other = JournalEntry("c2", 10.5, "refused", "power_cap", "srv-1", 350.0, "cap", "d1", "ctl-a", None, "interlock")
    for e in (sent, planned, other, planned):
        store.append_journal(e)
    assert store.journal() == [planned, other, sent]
    assert store.journal(since_s=10.5, limit=1) == [other]


def test_model_registry_returns_latest_version(store: TimeSeriesStore) -> None:
    assert store.latest_model("psu-failure") is None
    store.save_model("psu-failure", "1", b"\x00\x01", {"mape": 0.1}, t_s=1.0)
    store.save_model("psu-failure", "2", b"\x02" * 1000, {"mape": 0.05, "features": ["ripple_v"]}, t_s=2.0)
    store.save_model("other", "9", b"x", {}, t_s=3.0)
    rec = store.latest_model("psu-failure")
    assert rec is not None
    assert (rec.version, rec.blob, dict(rec.meta)) == ("2", b"\x02" * 1000, {"mape": 0.05, "features": ["ripple_v"]})


def test_latest_batch_matches_latest(store: TimeSeriesStore) -> None:
    store.write(ReadingBatch.concat([_series("b-dev", 20, 11), _series("a-dev", 20, 12)]))
    cols = store.latest_batch()
    assert cols.to_readings() == store.latest()
    assert cols.device_id.tolist() == ["a-dev", "b-dev"]  # ordered by device, then metric
    assert len(store.latest_batch(device_ids=["nobody"])) == 0


def test_training_set_exports_to_parquet(store: TimeSeriesStore, tmp_path: Path) -> None:
    s = _series("srv-1", 30, 13, tags=(("application", "web"),))
    store.write(s)
    path = tmp_path / "train" / "set.parquet"
    assert export_training_parquet(store, path, T0_S, T0_S + 20) == 20
    back = duckdb.connect().execute(f"SELECT t_s, value, tags FROM '{path}' ORDER BY t_s").fetchall()
    assert [r[0] for r in back] == s.t_s[:20].tolist()
    assert [r[1] for r in back] == s.value[:20].tolist()
    assert back[0][2] == '{"application": "web"}'


def test_store_journal_takes_the_actuators_entries(store: TimeSeriesStore) -> None:
    from wattwise.act.base import JournalEntry as ActEntry
    from wattwise.act.base import Phase
    from wattwise.model.values import Action, ActionKind

    action = Action(
        kind=ActionKind.POWER_CAP, target_id="srv-1", value=300.0, reason="feed A overload", decision_id="d7"
    )
    for i, phase in enumerate((Phase.PLANNED, Phase.DRY_RUN, Phase.PENDING, Phase.SENT, Phase.ACKED)):
        store.append_journal(ActEntry.of(action, phase, 100.0 + i))
    got = store.journal(since_s=101.0)
    assert [e.phase for e in got] == ["dry-run", "pending", "sent", "acked"]
    assert {(e.command_id, e.kind, e.value, e.reason) for e in got} == {
        (action.command_id, "power_cap", 300.0, "feed A overload")
    }


def test_append_journal_many_is_one_transaction_and_idempotent(store: TimeSeriesStore) -> None:
    entries = [JournalEntry(f"c{i}", 50.0 + i, "planned", "outlet_off", f"pdu-1.o{i}") for i in range(450)]
    # Every column filled in some rows and empty (None) in others round-trips unchanged.
    entries[3] = JournalEntry("c3", 53.0, "sent", "power_cap", "srv-1", 312.5, "cap", "d9", "ops", 7, "ok 'quoted'")
    entries[4] = JournalEntry("c4", 54.0, "acked", "throttle", "svc-1", 0.0, "", "", "controller", 0, "")
    store.append_journal_many(entries)
    store.append_journal_many(entries[:10])  # a retried tick writes nothing twice
    assert store.journal(limit=1000) == entries
