"""The twin's readings as telemetry sees them: unique identities, and NUT status bits that mean one thing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wattwise.drivers.nut_vars import NutVarParser, UpsStatus
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.metrics import PHASE_BREAKER_METRICS, PHASE_CURRENT_METRICS
from wattwise.model.site import Site
from wattwise.model.values import Reading
from wattwise.sim.emulators.nut_socket import NutDeviceSpec, readings_to_vars
from wattwise.sim.readings import collect_readings
from wattwise.sim.twin import Twin
from wattwise.store.duckdb_store import DuckDBStore
from wattwise.telemetry.batch import ReadingBatch
from wattwise.telemetry.validate import ReadingValidator, RejectReason, site_device_ids


@pytest.fixture(scope="module")
def site() -> Site:
    return generate_site(SiteSpec(servers=60, servers_per_rack=10, racks_per_hall=3, racklet_racks_per_hall=1, seed=4))


def test_pdu_phases_pass_validation_and_are_all_stored(site: Site, tmp_path: Path) -> None:
    # Regression (wattwise issue 5): the three phase currents of a PDU shared (device, metric,
    # t_s) and differed only by a tag, so the validator rejected two of three as duplicates.
    twin = Twin(site, seed=1)
    validator = ReadingValidator(site_device_ids(site))
    store = DuckDBStore(tmp_path / "twin.duckdb")
    stored = 0
    for _ in range(2):  # two polls: latest() must pick the newer one of each phase
        twin.run_for(5.0)
        readings = twin.readings()
        result = validator.validate(ReadingBatch.from_readings(readings), now_s=twin.t_s)
        assert result.reasons.tolist() == [RejectReason.OK] * len(readings)
        write = store.write(result.accepted)
        assert (write.inserted, dict(write.duplicates)) == (len(readings), {})
        stored += write.inserted
    assert validator.snapshot().rejected_total == 0
    assert store.count() == stored

    expected_a = (twin.ch.phase_w / twin.ch.phase_voltage_v).tolist()  # (n_pdu, 3)
    assert any(len(set(row)) == 3 for row in expected_a), "no PDU has distinct phase loads: a mix-up would not show"
    pdu_ids = [p.id for p in site.pdus]
    latest = store.latest(pdu_ids, [*PHASE_CURRENT_METRICS, *PHASE_BREAKER_METRICS])
    store.close()
    got = {(r.device_id, r.metric): r for r in latest}
    assert len(got) == len(latest) == 6 * len(pdu_ids)
    for pdu_id, phases_a in zip(pdu_ids, expected_a, strict=True):
        assert [got[pdu_id, m].value for m in PHASE_CURRENT_METRICS] == pytest.approx(phases_a), pdu_id
        assert [got[pdu_id, m].value for m in PHASE_BREAKER_METRICS] == [0.0, 0.0, 0.0]
    assert {r.t_s for r in latest} == {twin.t_s}


def _ups_status(twin: Twin) -> list[Reading]:
    # Straight from the collector: twin.readings() caches per step, and the low-battery state is set by hand.
    return [r for r in collect_readings(twin, twin.t_s, ["ups"]) if r.metric == "ups_status_flags"]


def _twin_in_states(site: Site) -> dict[str, list[Reading]]:
    """``ups_status_flags`` readings of every UPS on line, on battery, and on a low battery."""
    twin = Twin(site, seed=1)
    twin.run_for(5.0)
    states = {"online": _ups_status(twin)}
    twin.ch.feed_available[:] = False
    twin.step()
    states["on battery"] = _ups_status(twin)
    full_wh = twin.ch.ups_battery_wh * twin.ch.ups_soh_frac
    twin.ch.ups_energy_wh = 0.5 * twin.ch.ups_low_frac * full_wh  # half way below the low-battery mark
    states["low battery"] = _ups_status(twin)
    return states


def test_twin_status_flags_decode_to_its_status_words_with_the_driver_bits(site: Site) -> None:
    states = _twin_in_states(site)
    words_seen = {state: {dict(r.tags)["ups.status"] for r in rs} for state, rs in states.items()}
    assert {w.split()[0] for w in words_seen["online"]} == {"OL"}
    assert words_seen["on battery"] == {"OB DISCHRG"}
    assert words_seen["low battery"] == {"OB DISCHRG LB"}
    for rs in states.values():
        assert rs
        for r in rs:
            words = dict(r.tags)["ups.status"]
            decoded = {f.name for f in UpsStatus if int(r.value) & f}
            assert decoded == set(words.split()), (r.device_id, words, int(r.value))
            # What the NUT driver makes of the same words is the same number...
            from_driver = {x.metric: x.value for x in NutVarParser(r.device_id).parse({"ups.status": words}, 0.0)[0]}
            assert from_driver["ups_status_flags"] == r.value
            assert from_driver["on_battery"] == float("OB" in words.split())
            assert from_driver["low_battery"] == float("LB" in words.split())
            # ...and the NUT emulator serves the same words from the bits alone (no tag).
            served = readings_to_vars(NutDeviceSpec("u", r.device_id), [Reading(r.device_id, r.metric, r.value, 0.0)])
            assert set(served["ups.status"].split()) == set(words.split())


def test_emulator_serves_per_phase_currents_as_nut_phase_variables(site: Site) -> None:
    twin = Twin(site, seed=1)
    twin.run_for(5.0)
    pdu = site.pdus[0]
    served = readings_to_vars(NutDeviceSpec("p", pdu.id, device_type="pdu"), twin.readings())
    parsed, problems = NutVarParser(pdu.id).parse(served, twin.t_s)
    assert problems == []
    expected_a = (twin.ch.phase_w[0] / twin.ch.phase_voltage_v[0]).tolist()
    got = {r.metric: r.value for r in parsed if r.metric in PHASE_CURRENT_METRICS}
    # NUT text carries two decimals
    assert [got[m] for m in PHASE_CURRENT_METRICS] == pytest.approx(expected_a, abs=0.005)
    assert np.isclose(sum(got.values()), sum(expected_a), atol=0.015)
