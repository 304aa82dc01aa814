"""Malformed site files: each case names the exact rule, YAML path and line of its problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.model.site_base_text import BASE, edit

from wattwise.model.loader import SiteValidationError, check_file, check_text, load_site
from wattwise.model.problems import Problem, Severity


@dataclass(frozen=True)
class Case:
    name: str
    edits: dict[int, str]
    rule: str
    path: str
    line: int
    says: str = ""
    severity: Severity = Severity.ERROR
    also: tuple[str, ...] = field(default=())  # other rules the edit must also trigger


CASES = [
    # --- unknown keys, missing fields, wrong types -------------------------------------
    Case("unknown key in a feed", {4: "  capacity_w: 100000\n  colour: red"}, "unknown-key", "feeds[0].colour", 5),
    Case("unknown top-level key", {1: "id: t\nowner: bob"}, "unknown-key", "owner", 2, "'owner'"),
    Case(
        "unknown key in a flow mapping",
        {60: "  - {id: s1-p1, input: a-o1, rating_w: 500, volts: 12}"},
        "unknown-key",
        "servers[0].psus[0].volts",
        60,
    ),
    Case(
        "key given twice",
        {4: "  capacity_w: 100000\n  capacity_w: 50"},
        "duplicate-key",
        "feeds[0].capacity_w",
        5,
        "repeats line 4",
    ),
    Case("top-level key given twice", {1: "id: t\nid: u"}, "duplicate-key", "id", 2, "keeps only the last"),
    Case("missing capacity", {4: ""}, "missing-field", "feeds[0].capacity_w", 3),
    Case("text where a number goes", {19: "  capacity_w: lots"}, "wrong-type", "ups[0].capacity_w", 19, "'lots'"),
    Case(
        "not a boolean",
        {33: "  - {id: a-o1, phase: 1, switched: maybe}"},
        "wrong-type",
        "pdus[0].outlets[0].switched",
        33,
    ),
    Case(
        "scalar where a mapping goes", {45: "  power: 5", 46: "", 47: "", 48: ""}, "wrong-type", "racklets[0].power", 45
    ),
    # --- units out of physical range, NaN and infinities --------------------------------
    Case("negative breaker", {31: "  breaker_a: -32"}, "out-of-range", "pdus[0].breaker_a", 31, "-32"),
    Case("NaN battery energy", {21: "  battery_wh: .nan"}, "out-of-range", "ups[0].battery_wh", 21, "finite"),
    Case("infinite capacity", {24: "  capacity_w: .inf"}, "out-of-range", "ups[1].capacity_w", 24, "finite"),
    Case("minus-infinite idle power", {56: "  idle_w: -.inf"}, "out-of-range", "servers[0].idle_w", 56),
    Case(
        "state of health above 1",
        {21: "  battery_wh: 4000\n  state_of_health_frac: 1.5"},
        "out-of-range",
        "ups[0].state_of_health_frac",
        22,
    ),
    Case("phase 4", {33: "  - {id: a-o1, phase: 4}"}, "out-of-range", "pdus[0].outlets[0].phase", 33),
    Case("racklet without PSUs", {46: "    psus: []", 47: "", 48: ""}, "out-of-range", "racklets[0].power.psus", 46),
    Case(
        "voltage of a power line", {37: "  input: ups-b\n  voltage_v: 230000"}, "out-of-range", "pdus[1].voltage_v", 38
    ),
    # --- values not allowed, bad ids, per-object invariants ------------------------------
    Case("feed side D", {6: "  side: D"}, "not-allowed", "feeds[1].side", 6, "'D'"),
    Case("unknown tier", {68: "  tier: urgent"}, "not-allowed", "services[0].tier", 68, "'urgent'"),
    Case("id with a space", {74: "- {id: 'w 2', service: web, server: s2}"}, "bad-id", "workloads[1].id", 74),
    Case("empty id", {73: "- {id: '', service: db, server: s1}"}, "bad-id", "workloads[0].id", 73),
    Case("idle above peak", {56: "  idle_w: 500"}, "invalid-value", "servers[0]", 54, "idle_w 500.0 exceeds peak_w"),
    Case("VA below W", {20: "  capacity_va: 1000"}, "invalid-value", "ups[0]", 17, "capacity_va"),
    Case("preferred source not a source", {14: "  preferred_source: feed-b"}, "invalid-value", "ats[0]", 12),
    Case(
        "throttle levels increasing",
        {68: "  tier: critical\n  throttle_levels_frac: [0.5, 1.0]"},
        "invalid-value",
        "services[0]",
        67,
        "strictly decrease",
    ),
    # --- ids: duplicates and dangling references -----------------------------------------
    Case(
        "duplicate outlet id",
        {41: "  - {id: b-o1}"},
        "duplicate-id",
        "pdus[1].outlets[1].id",
        41,
        "already used at pdus[1].outlets[0]",
    ),
    Case(
        "UPS reusing a feed id",
        {22: "- id: feed-b"},
        "duplicate-id",
        "ups[1].id",
        22,
        "feeds[1]",
        also=("dangling-ref",),
    ),
    Case(
        "two services with one id",
        {69: "- id: db"},
        "duplicate-id",
        "services[1].id",
        69,
        "already used at services[0]",
        also=("dangling-ref",),  # w2 runs 'web', which is gone
    ),
    Case("PDU input missing", {29: "  input: ups-z"}, "dangling-ref", "pdus[0].input", 29, "'ups-z' does not exist"),
    Case("server in a racklet", {55: "  rack: rl-1"}, "dangling-ref", "servers[0].rack", 55, "is a racklet"),
    Case(
        "PSU plugged into a PDU",
        {60: "  - {id: s1-p1, input: pdu-a, rating_w: 500}"},
        "dangling-ref",
        "servers[0].psus[0].input",
        60,
        "is a pdu, expected outlet",
    ),
    Case("UPS fed from itself", {18: "  input: ups-a"}, "dangling-ref", "ups[0].input", 18, "is a ups"),
    Case("ATS source missing", {13: "  sources: [feed-a, gen-z]"}, "dangling-ref", "ats[0].sources[1]", 13),
    Case(
        "workload of no service",
        {73: "- {id: w1, service: dbx, server: s1}"},
        "dangling-ref",
        "workloads[0].service",
        73,
    ),
    Case(
        "processor on no server",
        {76: "- {id: ep1, server: s9, partitions: [p0, p1]}"},
        "dangling-ref",
        "event_processors[0].server",
        76,
    ),
    Case("dependency missing", {71: "  depends_on: [db, cache]"}, "dangling-ref", "services[1].depends_on[1]", 71),
    # --- graph rules ----------------------------------------------------------------------
    Case(
        "two-service cycle",
        {68: "  tier: critical\n  depends_on: [web]"},
        "dependency-cycle",
        "services[1].depends_on",
        72,
        "db -> web -> db",
    ),
    Case(
        "self dependency",
        {71: "  depends_on: [db, web]"},
        "dependency-cycle",
        "services[1].depends_on",
        71,
        "web -> web",
    ),
    Case(
        "2N with both PSUs on one PDU",
        {61: "  - {id: s1-p2, input: a-o2, rating_w: 500}"},
        "redundancy-unmet",
        "servers[0].redundancy",
        58,
        "feed-a, gen-a, pdu-a, ups-a",
    ),
    Case(
        "2N with a PSU too small",
        {61: "  - {id: s1-p2, input: b-o1, rating_w: 300}"},
        "redundancy-unmet",
        "servers[0].redundancy",
        58,
        "300 W < peak 400 W",
    ),
    Case("N+1 with one PSU", {58: "  redundancy: N+1", 61: ""}, "redundancy-unmet", "servers[0].redundancy", 58),
    Case(
        "N+1 without enough spare",
        {
            58: "  redundancy: N+1",
            60: "  - {id: s1-p1, input: a-o1, rating_w: 300}",
            61: "  - {id: s1-p2, input: b-o1, rating_w: 300}",
        },
        "redundancy-unmet",
        "servers[0].redundancy",
        58,
        "300 W < peak 400 W",
    ),
    Case(
        "racklet N+1 cannot carry its racks",
        {
            47: "    - {id: rect-1, input: a-o3, rating_w: 200}",
            48: "    - {id: rect-2, input: b-o3, rating_w: 200}",
        },
        "redundancy-unmet",
        "racklets[0].power.redundancy",
        45,
        "200 W < peak 300 W",
    ),
    Case(
        "outlets over the breaker",
        {38: "  breaker_a: 1"},
        "outlet-over-breaker",
        "pdus[1].outlets",
        39,
        "phase 1: connected peak 350 W exceeds breaker 184 W",
    ),
    Case(
        "breaker fine until the A side fails",
        {38: "  breaker_a: 3"},
        "breaker-failover",
        "pdus[1].outlets",
        39,
        # normal: s1 half 200 + rectifier half 150 = 350 W <= 552 W; failed over: 400 + 300 = 700 W
        "phase 1: when the redundant supplies fail over, its peak 700 W exceeds breaker 552 W",
        Severity.WARNING,
    ),
    Case(
        "outlet on a phase the PDU lacks",
        {42: "  - {id: b-o3, phase: 2}"},
        "phase-out-of-range",
        "pdus[1].outlets[2].phase",
        42,
    ),
    Case("server with no power at all", {52: ""}, "no-power-path", "servers[1].psus", 62, "'s2' has no PSUs"),
    Case("ATS sources not a list", {13: "  sources: feed-a"}, "wrong-type", "ats[0].sources", 13),
    Case("ATS with one source twice", {13: "  sources: [feed-a, feed-a]"}, "ats-same-source", "ats[0].sources", 13),
    Case(
        "partition owned twice",
        {76: "- {id: ep1, server: s1, partitions: [p0, p0]}"},
        "duplicate-partition",
        "event_processors[0].partitions[1]",
        76,
    ),
    Case(
        "UPS smaller than its connected peak",
        {24: "  capacity_w: 300", 25: "  capacity_va: 300"},
        "oversubscribed",
        "ups[1].capacity_w",
        24,
        "connected peak 350 W exceeds capacity 300 W",
        Severity.WARNING,
    ),
    Case(
        "feed behind an ATS smaller than its peak",
        {4: "  capacity_w: 200"},
        "oversubscribed",
        "feeds[0].capacity_w",
        4,
        "connected peak 350 W exceeds capacity 200 W",
        Severity.WARNING,
    ),
    Case(
        "rack cooling short",
        {50: "- id: rack-1\n  cooling_capacity_w: 300"},
        "cooling-short",
        "racks[0].cooling_capacity_w",
        51,
        "server peak 400 W exceeds rack cooling 300 W",
        Severity.WARNING,
    ),
    Case(
        "racklet cooling short",
        {44: "- id: rl-1\n  cooling: {capacity_w: 1000}", 65: "  peak_w: 2000"},
        "cooling-short",
        "racklets[0].cooling.capacity_w",
        45,
        "2000 W exceeds its cooling module's 1000 W",
        Severity.WARNING,
    ),
    Case(
        "critical service on a low one",
        {68: "  tier: low"},
        "depends-on-lower-tier",
        "services[1].depends_on[0]",
        71,
        "high service 'web' depends on low service 'db'",
        Severity.WARNING,
    ),
]


def test_base_site_is_valid() -> None:
    site, problems = check_text(BASE, "base.yaml")
    assert problems == []
    assert site is not None
    assert len(site.servers) == 2


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_site(case: Case, tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(edit(case.edits), encoding="utf-8")
    site, problems = check_file(path)
    hits = [p for p in problems if (p.rule, p.path) == (case.rule, case.path)]
    assert len(hits) == 1, "\n".join(map(str, problems))
    hit = hits[0]
    assert (hit.file, hit.line, hit.severity) == (str(path), case.line, case.severity)
    assert case.says in hit.message
    assert f"{path}:{case.line}: {case.severity}: {case.path}: [{case.rule}]" in str(hit)
    others = {p.rule for p in problems if p is not hit and p.severity is Severity.ERROR}
    assert others == set(case.also), "\n".join(map(str, problems))
    if case.severity is Severity.ERROR:
        assert site is None
    else:
        assert site is not None


def test_several_problems_are_all_listed(tmp_path: Path) -> None:
    text = edit(
        {
            4: "  capacity_w: -1",
            13: "  sources: [feed-a, feed-a]",
            29: "  input: ups-z",
            61: "  - {id: s1-p2, input: a-o2, rating_w: 500}",
            71: "  depends_on: [db, web]",
            76: "- {id: ep1, server: s1, partitions: [p0, p0], colour: red}",
        }
    )
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    site, problems = check_file(path)
    assert site is None
    got = {(p.rule, p.path, p.line) for p in problems}
    assert got == {
        ("out-of-range", "feeds[0].capacity_w", 4),
        ("ats-same-source", "ats[0].sources", 13),
        ("dangling-ref", "pdus[0].input", 29),
        ("redundancy-unmet", "servers[0].redundancy", 58),
        ("dependency-cycle", "services[1].depends_on", 71),
        ("duplicate-partition", "event_processors[0].partitions[1]", 76),
        ("unknown-key", "event_processors[0].colour", 76),
    }
    with pytest.raises(SiteValidationError, match=r"7 problem\(s\) in site") as info:
        load_site(path)
    assert len(info.value.problems) == 7


def test_long_cycle_is_named_once() -> None:
    services = "\n".join(f"- id: s{i}\n  tier: high\n  depends_on: [s{(i + 1) % 4}]" for i in range(4))
    text = BASE.split("services:")[0] + "services:\n" + services + "\n"
    _, problems = check_text(text)
    cycles = [p for p in problems if p.rule == "dependency-cycle"]
    assert [p.message for p in cycles] == ["dependency cycle: s0 -> s1 -> s2 -> s3 -> s0"]
    assert cycles[0].path == "services[3].depends_on"


@pytest.mark.parametrize(
    ("content", "rule", "line", "says"),
    [
        (b"", "empty-file", 1, "no site"),
        (b"# only a comment\n", "empty-file", 1, "no site"),
        (b"- id: a\n- id: b\n", "wrong-type", 1, "not a list"),
        (b"just text\n", "wrong-type", 1, "not a str"),
        (b"id: t\nfeeds: [\n  {id: a\n", "yaml-syntax", 4, ""),
        (b"id: t\n  bad: indent\n", "yaml-syntax", 2, "mapping values"),
        (b"id: t\nid: u\nfeeds: *nowhere\n", "yaml-syntax", 3, "alias"),
    ],
)
def test_unusable_files(tmp_path: Path, content: bytes, rule: str, line: int, says: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    site, problems = check_file(path)
    assert site is None
    assert [(p.rule, p.path, p.line) for p in problems] == [(rule, "<root>", line)]
    assert says in problems[0].message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("id: café\n".encode("latin-1"))
    site, problems = check_file(path)
    assert site is None
    assert [(p.rule, p.path, p.file) for p in problems] == [("unreadable", "<root>", str(path))]
    assert "not UTF-8" in problems[0].message


def test_missing_file(tmp_path: Path) -> None:
    site, problems = check_file(tmp_path / "nope.yaml")
    assert site is None
    assert [p.rule for p in problems] == ["unreadable"]


def test_json_site_problems_are_located(tmp_path: Path) -> None:
    one_line = '{"id": "j", "feeds": [{"id": "f", "capacity_w": -5}]}'
    site, problems = check_text(one_line, "site.json")
    assert site is None
    assert [(p.rule, p.path, p.line) for p in problems] == [("out-of-range", "feeds[0].capacity_w", 1)]
    pretty = '{\n  "id": "j",\n  "feeds": [\n    {"id": "f",\n     "capacity_w": -5}\n  ]\n}\n'
    _, problems = check_text(pretty, "site.json")
    assert [(p.rule, p.path, p.line) for p in problems] == [("out-of-range", "feeds[0].capacity_w", 5)]
    _, problems = check_text('{"id": "j", "feeds": [', "site.json")
    assert [(p.rule, p.line) for p in problems] == [("yaml-syntax", 1)]


def test_problem_json_form() -> None:
    problem = Problem("feeds[0]", "unknown-key", "unknown key 'x'", Severity.WARNING, "s.yaml", 3)
    assert problem.as_dict() == {
        "file": "s.yaml",
        "line": 3,
        "path": "feeds[0]",
        "rule": "unknown-key",
        "severity": "warning",
        "message": "unknown key 'x'",
    }
    assert str(Problem("<root>", "r", "m")) == "<site>: error: <root>: [r] m"


def test_cycle_reached_twice_is_reported_once() -> None:
    services = "- id: a\n  tier: high\n  depends_on: [b]\n- id: b\n  tier: high\n  depends_on: [a, a]\n"
    _, problems = check_text(BASE.split("services:")[0] + "services:\n" + services)
    assert [(p.rule, p.path) for p in problems] == [("dependency-cycle", "services[1].depends_on")]


def test_odd_shapes_inside_lists_are_left_to_pydantic() -> None:
    text = edit(
        {
            61: "  - 5",
            48: "    - [rect-2]",
            76: "- {id: ep1, server: s1, partitions: [1, p1]}",
            41: "  - b-o2",
            42: "  - {id: b-o3, phase: x}",
            44: "- id: rl-1\n  cooling: 5",
            63: "  rack: [rack-2]",
        }
    )
    _, problems = check_text(text)
    assert sorted((p.rule, p.path) for p in problems) == [
        ("wrong-type", "event_processors[0].partitions[0]"),
        ("wrong-type", "pdus[1].outlets[1]"),
        ("wrong-type", "pdus[1].outlets[2].phase"),
        ("wrong-type", "racklets[0].cooling"),
        ("wrong-type", "racklets[0].power.psus[1]"),
        ("wrong-type", "servers[0].psus[1]"),
        ("wrong-type", "servers[1].rack"),
    ]


def test_ids_and_references_of_the_wrong_type() -> None:
    text = edit(
        {
            28: "- id: 9",
            37: "  input: 5",
            40: "  - {id: 5}",
            60: "  - {id: s1-p1, input: [a-o1], rating_w: 500}",
            71: "  depends_on: [db, 7]",
        }
    )
    _, problems = check_text(text)
    assert sorted((p.rule, p.path, p.line) for p in problems) == [
        ("dangling-ref", "servers[0].psus[1].input", 61),  # its outlet's id is now a number
        ("wrong-type", "pdus[0].id", 28),
        ("wrong-type", "pdus[1].input", 37),
        ("wrong-type", "pdus[1].outlets[0].id", 40),
        ("wrong-type", "servers[0].psus[0].input", 60),
        ("wrong-type", "services[1].depends_on[1]", 71),
    ]


def test_rule_catalogue_matches_the_rules_tested() -> None:
    # Every rule in the catalogue is exercised by a case here, and no case names an unknown rule.
    from wattwise.model.problems import RULES

    exercised = {c.rule for c in CASES} | {
        "unreadable",
        "yaml-syntax",
        "empty-file",
    }  # the unusable-file tests above
    assert exercised == set(RULES)
