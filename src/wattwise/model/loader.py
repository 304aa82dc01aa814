"""Load a site from YAML (or JSON), reporting every problem with file, line, YAML path and rule.

The fast path parses with libyaml and validates once; line numbers are only looked up (by
composing the YAML node tree) when there is something to report, so a valid 100k-server site
loads in seconds.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from wattwise.errors import ConfigError
from wattwise.model.problems import Problem, Severity
from wattwise.model.rules import check_site
from wattwise.model.site import Site

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _KeyCheckingLoader(_Loader):  # type: ignore[misc,valid-type]
    """libyaml loader that notes when a mapping repeats a key (PyYAML silently keeps the last)."""

    duplicate_keys = False

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build the mapping, noting a repeated scalar key."""
        keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
        if len(keys) != len(set(keys)):
            self.duplicate_keys = True
        mapping: dict[Any, Any] = super().construct_mapping(node, deep)
        return mapping


_RULE_OF_PYDANTIC = {
    "extra_forbidden": "unknown-key",
    "missing": "missing-field",
    "string_pattern_mismatch": "bad-id",
    "string_too_short": "bad-id",
    "string_too_long": "bad-id",
    "literal_error": "not-allowed",
    "enum": "not-allowed",
    "value_error": "invalid-value",
}
_RANGE_TYPES = ("greater_than", "less_than", "too_short", "too_long", "finite_number")


class SiteValidationError(ConfigError):
    """A site file broke one or more rules; ``problems`` lists them all."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        errors = [p for p in problems if p.severity is Severity.ERROR]
        lines = "\n".join(f"  {p}" for p in errors)
        super().__init__(f"{len(errors)} problem(s) in site:\n{lines}")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a large acyclic object tree.

    Parsing and validating a 100k-server site allocates millions of containers; each
    allocation burst triggers a full collection that walks every live object, which tripled
    load time (see docs/adr/0001-site-loading-speed.md). The tree has no reference cycles, so
    reference counting frees it all the same; the collector resumes on exit, even on an
    exception. Nested use keeps the outer pause.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _rule_of(error_type: str) -> str:
    if error_type in _RULE_OF_PYDANTIC:
        return _RULE_OF_PYDANTIC[error_type]
    if error_type.startswith(_RANGE_TYPES):
        return "out-of-range"
    return "wrong-type"


def _path_of(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    problems = []
    errors = err.errors(include_url=False)
    inner = {e["loc"][:n] for e in errors for n in range(len(e["loc"]))}
    for e in errors:
        if e["type"] == "too_short" and e["loc"] in inner:
            continue  # "too few items" only because an item below already failed: noise
        rule = _rule_of(e["type"])
        msg = e["msg"]
        if rule == "unknown-key":
            msg = f"unknown key {str(e['loc'][-1])!r}"
        elif "input" in e and rule in {"wrong-type", "out-of-range", "not-allowed", "bad-id"}:
            msg = f"{msg} (got {e['input']!r})"
        problems.append(Problem(_path_of(e["loc"]), rule, msg))
    return problems


def _line_index(text: str) -> dict[str, int]:
    """YAML path → 1-based line for every node (slow path, only when reporting)."""
    if text.lstrip().startswith("{") and "\n" not in text.strip():
        # One-line JSON (as generate-site writes it): every node is on line 1, and composing
        # a 40 MB document as YAML would take minutes.
        return {"<root>": 1}
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}
    todo: list[tuple[str, yaml.Node]] = [("", root)] if root is not None else []
    while todo:
        path, node = todo.pop()
        # A key's line beats its value's: "outlets:" is where an operator looks.
        lines.setdefault(path or "<root>", node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = f"{path}.{key.value}" if path else str(key.value)
                lines[child] = key.start_mark.line + 1
                todo.append((child, value))
        elif isinstance(node, yaml.SequenceNode):
            todo.extend((f"{path}[{i}]", item) for i, item in enumerate(node.value))
    return lines


def _duplicate_keys(text: str) -> list[Problem]:
    """One ``duplicate-key`` problem per repeated key (slow path: only when the loader saw one)."""
    root = yaml.compose(text, Loader=_Loader)
    problems = []
    todo: list[tuple[str, yaml.Node]] = [("", root)] if root is not None else []
    while todo:
        path, node = todo.pop()
        if isinstance(node, yaml.MappingNode):
            first: dict[object, int] = {}
            for key, value in node.value:
                child = f"{path}.{key.value}" if path else str(key.value)
                line = key.start_mark.line + 1
                if key.value in first:
                    msg = f"key {key.value!r} repeats line {first[key.value]}; YAML keeps only the last value"
                    problems.append(Problem(child, "duplicate-key", msg))
                first.setdefault(key.value, line)
                todo.append((child, value))
        elif isinstance(node, yaml.SequenceNode):
            todo.extend((f"{path}[{i}]", item) for i, item in enumerate(node.value))
    return problems


def _load_yaml(text: str) -> tuple[Any, list[Problem]]:
    loader = _KeyCheckingLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    return data, (_duplicate_keys(text) if loader.duplicate_keys else [])


def _locate(problem: Problem, lines: Mapping[str, int], file: str) -> Problem:
    path = problem.path
    while path and path not in lines:
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    line = lines.get(path) if path else lines.get("<root>")
    return Problem(problem.path, problem.rule, problem.message, problem.severity, file, line)


def parse_text(text: str, file: str = "<string>") -> tuple[Any, list[Problem]]:
    """Parse YAML/JSON text into plain data, or a ``yaml-syntax`` problem.

    Returns:
        The data (``None`` when unusable) and the problems found while parsing: a syntax
        error, an empty file, a top-level value that is not a mapping, repeated keys.
    """
    duplicates: list[Problem] = []
    try:
        # JSON is YAML too; libyaml is ~7x slower than json, so big generated sites are JSON.
        if file.endswith(".json") or text.lstrip().startswith("{"):
            data = json.loads(text)
        else:
            data, duplicates = _load_yaml(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        mark = getattr(err, "problem_mark", None)
        line = getattr(err, "lineno", None) or (mark.line + 1 if mark is not None else None)
        return None, [Problem("<root>", "yaml-syntax", str(err).splitlines()[0], file=file, line=line)]
    if data is None:
        return None, [Problem("<root>", "empty-file", "the file holds no site", file=file, line=1)]
    if not isinstance(data, dict):
        msg = f"a site file must be a mapping, not a {type(data).__name__}"
        return None, [Problem("<root>", "wrong-type", msg, file=file, line=1)]
    return data, duplicates


def check_text(text: str, file: str = "<string>", *, warning_lines: bool = True) -> tuple[Site | None, list[Problem]]:
    """Validate site text; return the site (when it has no errors) and every problem found.

    Args:
        text: The site as YAML or JSON.
        file: Name used in problems.
        warning_lines: Look up line numbers when there are only warnings (composing the YAML
            node tree costs about a second per MB; errors always get their lines).
    """
    with gc_paused():
        data, problems = parse_text(text, file)
        if data is None:
            return None, problems
        # Rules first: their scratch memory is freed before the site's objects are built,
        # which keeps the peak of a 100k-server load at text + raw data + site.
        rule_problems = check_site(data)
        site: Site | None = None
        try:
            site = Site.model_validate(data)
        except ValidationError as err:
            problems.extend(_pydantic_problems(err))
        del data
        problems.extend(rule_problems)
    has_errors = any(p.severity is Severity.ERROR for p in problems)
    if problems and (has_errors or warning_lines):
        lines = _line_index(text)
        problems = [_locate(p, lines, file) for p in problems]
    elif problems:
        problems = [_locate(p, {}, file) for p in problems]
    if has_errors:
        site = None
    return site, problems


def check_file(path: Path, *, warning_lines: bool = True) -> tuple[Site | None, list[Problem]]:
    """Validate a site file; see :func:`check_text`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        return None, [Problem("<root>", "unreadable", str(err), file=str(path))]
    except UnicodeDecodeError as err:
        return None, [Problem("<root>", "unreadable", f"not UTF-8 text: {err}", file=str(path))]
    return check_text(text, str(path), warning_lines=warning_lines)


def load_site(path: Path) -> Site:
    """Load a valid site or raise :class:`SiteValidationError` listing every problem.

    Raises:
        SiteValidationError: The file broke at least one rule (warnings alone do not raise).
    """
    site, problems = check_file(path, warning_lines=False)  # warnings are dropped here: no line look-up
    if site is None:
        raise SiteValidationError(problems)
    return site


def dump_site(site: Site) -> str:
    """Serialise a site to YAML that :func:`check_text` loads back to an equal site."""
    data = site.model_dump(mode="json", exclude_defaults=True)
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)
