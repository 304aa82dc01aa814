"""Bad input: >=10 000 malformed readings and payloads, no crash, each rejection counted, valid rows stored."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from wattwise.model.clock import SimClock
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.codec import decode_payload
from wattwise.telemetry.pipeline import IngestPipeline
from wattwise.telemetry.validate import ReadingValidator

NOW_S = 1_700_000_000.0
DEVICES = [f"srv-{i}" for i in range(50)]


def _valid(rng: random.Random, seq: int) -> dict[str, object]:
    return {
        "device_id": rng.choice(DEVICES),
        "metric": "power_w",
        "value": rng.uniform(0, 900),
        "t_s": NOW_S - seq * 1e-3,
        "tags": {"application": rng.choice(["web", "db"])},
    }


def _make_item(rng: random.Random, seq: int, valid_sent: list[dict[str, object]]) -> tuple[bytes, str | None]:
    """One payload and the reason it must be rejected for (None: it must be stored)."""
    good = _valid(rng, seq)
    kind = rng.randrange(16)
    bad: dict[int, tuple[object, str]] = {
        1: ({**good, "value": float("nan")}, "not_finite"),
        2: ({**good, "value": -abs(float(good["value"])) - 1}, "out_of_range"),  # type: ignore[arg-type]
        3: ({**good, "device_id": f"ghost-{seq}"}, "unknown_device"),
        4: ({**good, "metric": "power_kw"}, "unknown_metric"),
        5: ({**good, "t_s": NOW_S + 86400}, "future"),
        6: ({**good, "t_s": 0.0}, "too_old"),
        7: ({**good, "value": "12.5"}, "malformed"),
        8: ({**good, "tags": ["not", "a", "dict"]}, "malformed"),
        9: ({**good, "quality": "great"}, "malformed"),
        10: ({"metric": "power_w", "value": 1.0}, "malformed"),
        11: (["not an object"], "malformed"),
    }
    if kind == 0 or kind == 15:
        valid_sent.append(good)
        return json.dumps(good).encode(), None
    if kind in bad:
        obj, reason = bad[kind]
        return json.dumps(obj).encode(), reason
    if kind == 12:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) + b"\xff", "malformed"
    if kind == 13:  # huge numbers: 1e999 parses as inf, a 400-digit integer overflows a float
        return json.dumps(good).replace(f'"value": {good["value"]}', '"value": ' + "9" * 400).encode(), "not_finite"
    if valid_sent:  # kind 14: an exact duplicate of a reading already sent
        return json.dumps(rng.choice(valid_sent)).encode(), "duplicate"
    return b"{", "malformed"


async def test_fuzzed_stream_counts_every_rejection_and_stores_every_valid_reading(tmp_path: Path) -> None:
    rng = random.Random(1234)
    valid_sent: list[dict[str, object]] = []
    items = [_make_item(rng, seq, valid_sent) for seq in range(12_000)]
    expected = Counter(reason for _, reason in items if reason is not None)
    store = DuckDBStore(tmp_path / "fuzz.duckdb")
    pipeline = IngestPipeline(store, ReadingValidator(DEVICES), SimClock(NOW_S))
    for start in range(0, len(items), 700):
        batches = []
        for payload, _ in items[start : start + 700]:
            batch, rejected = decode_payload(payload)
            batches.append(batch)
            for _reason, device in rejected:
                pipeline.count_malformed(device)
        await pipeline.commit(ReadingBatch.concat(batches))
    stats = pipeline.validator.stats
    assert stats.by_reason() == dict(expected)
    unique_valid = {(str(v["device_id"]), float(v["t_s"])) for v in valid_sent}  # type: ignore[arg-type]
    assert len(unique_valid) == len(valid_sent)
    assert store.count() == len(valid_sent) == stats.accepted_total
    stored = store.training_set(0, NOW_S + 1)
    assert set(zip(stored.device_id.tolist(), stored.t_s.tolist(), strict=True)) == unique_valid
    assert sum(expected.values()) + len(valid_sent) >= 10_000
    store.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
reading_like = st.fixed_dictionaries(
    {},
    optional={
        "device_id": st.one_of(st.sampled_from(DEVICES), json_values),
        "metric": st.one_of(st.sampled_from(["power_w", "energy_j", "voltage_v"]), json_values),
        "value": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), json_values),
        "t_s": st.one_of(st.floats(), st.just(NOW_S), json_values),
        "quality": st.one_of(st.sampled_from(["good", "bad", "uncertain"]), json_values),
        "tags": st.one_of(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3), json_values),
    },
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.lists(reading_like, max_size=8).map(lambda x: json.dumps(x).encode())))
def test_decode_never_raises_and_accounts_for_every_item(payload: bytes) -> None:
    batch, rejected = decode_payload(payload)
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        assert (len(batch), len(rejected)) == (0, 1)
        return
    assert len(batch) + len(rejected) == (len(doc) if isinstance(doc, list) else 1)
    v = ReadingValidator(DEVICES)
    res = v.validate(batch, NOW_S)  # and validation of whatever decoded never raises either
    assert v.stats.accepted_total + v.stats.rejected_total == len(batch) == len(res.reasons)
