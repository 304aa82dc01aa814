"""Any shape of input gives problems, never an exception: junk grafted anywhere into a site."""

from __future__ import annotations

import gc
import json
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.model.site_base_text import BASE

from wattwise.model.loader import check_text, gc_paused
from wattwise.model.problems import RULES

BASE_DATA = yaml.safe_load(BASE)

junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["", "s1", "a-o1", "pdu-a", "db", "ats-a", "feed-a", "rl-1", "x y"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["id", "input", "psus", "x"]), inner),
    max_leaves=6,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


ALL_PATHS = paths(BASE_DATA)[1:]


def graft(path: tuple[Any, ...], value: Any) -> Any:
    data = json.loads(json.dumps(BASE_DATA))
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return data


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(ALL_PATHS), value=junk)
def test_junk_anywhere_is_reported_not_raised(path: tuple[Any, ...], value: Any) -> None:
    data = graft(path, value)
    text = json.dumps(data, indent=1, allow_nan=True)
    site, problems = check_text(text, "fuzz.json")
    assert {p.rule for p in problems} <= set(RULES)
    if site is None:
        assert any(p.severity == "error" for p in problems)


def test_json_that_yaml_cannot_read_still_reports_paths() -> None:
    # Valid JSON that YAML cannot read (a raw DEL character in a string): the paths still
    # come, without line numbers.
    text = '{\n "id": "j",\n "name": "a\x7fb",\n "feeds": [{"id": "f", "capacity_w": -1}]\n}\n'
    site, problems = check_text(text, "del.json")
    assert site is None
    assert [(p.rule, p.path, p.line) for p in problems] == [("out-of-range", "feeds[0].capacity_w", None)]


def test_gc_pause_nests_and_restores() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause does not end the outer one
    assert gc.isenabled()


@settings(max_examples=200, deadline=None)
@given(
    drop=st.sets(st.integers(1, len(BASE.splitlines())), max_size=4),
    repeat=st.sets(st.integers(1, len(BASE.splitlines())), max_size=2),
)
def test_lines_dropped_or_repeated_give_located_problems(drop: set[int], repeat: set[int]) -> None:
    lines = []
    for n, line in enumerate(BASE.splitlines(), start=1):
        if n not in drop:
            lines.append(line)
        if n in repeat:
            lines.append(line)
    text = "\n".join(lines) + "\n"
    site, problems = check_text(text, "cut.yaml")
    assert {p.rule for p in problems} <= set(RULES)
    n_lines = len(lines)
    assert all(p.line is None or 1 <= p.line <= n_lines + 1 for p in problems)  # +1: end of stream
    if not drop and not repeat:
        assert problems == []
        assert site is not None
