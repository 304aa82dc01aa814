"""The one error tree: its shape matches the drawing in errors.py, and errors carry their fields."""

from __future__ import annotations

import inspect
import re

import pytest

from wattwise import errors
from wattwise.errors import (
    ActuationRefused,
    ConfigError,
    DeviceAuthError,
    DeviceProtocolError,
    DeviceUnavailable,
    DriverError,
    WattwiseError,
)
from wattwise.model.loader import SiteValidationError
from wattwise.model.problems import Problem, Severity


def drawn_tree() -> dict[str, str]:
    """Child → parent as drawn in the module docstring (indentation gives the parent)."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        m = re.match(r"^(\s*(?:[│ ]*[├└]── )?)([A-Z]\w+)\b", line)
        if not m or not m.group(2).endswith(("Error", "Unavailable", "Refused", "Lost")):
            continue
        depth = len(m.group(1))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[m.group(2)] = stack[-1][1]
        stack.append((depth, m.group(2)))
    return parents


def test_every_error_class_is_drawn_under_its_real_parent() -> None:
    classes = {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, WattwiseError) and cls is not WattwiseError
    }
    classes["SiteValidationError"] = SiteValidationError
    tree = drawn_tree()
    assert set(tree) == set(classes)
    for name, parent in tree.items():
        assert classes[name].__bases__[0].__name__ == parent


def test_driver_errors_carry_device_and_url() -> None:
    err = DeviceUnavailable("timed out", device_id="ups-1", url="http://10.0.0.5:3493")
    assert isinstance(err, DriverError)
    assert (err.device_id, err.url) == ("ups-1", "http://10.0.0.5:3493")
    assert str(err) == "timed out (device=ups-1, url=http://10.0.0.5:3493)"
    assert str(DeviceAuthError("refused", device_id="pdu-7")) == "refused (device=pdu-7)"
    assert str(DeviceProtocolError("bad payload")) == "bad payload"


def test_actuation_refused_keeps_reason_and_command() -> None:
    err = ActuationRefused("would drop critical service db", command_id="cmd-42")
    assert (err.reason, err.command_id) == ("would drop critical service db", "cmd-42")
    with pytest.raises(WattwiseError):
        raise err


def test_site_validation_error_lists_errors_not_warnings() -> None:
    problems = [
        Problem("feeds[0].capacity_w", "out-of-range", "must be > 0", file="s.yaml", line=4),
        Problem("services[1].depends_on[0]", "depends-on-lower-tier", "w", Severity.WARNING, "s.yaml", 9),
    ]
    err = SiteValidationError(problems)
    assert isinstance(err, ConfigError)
    assert err.problems == tuple(problems)
    assert str(err) == "1 problem(s) in site:\n  s.yaml:4: error: feeds[0].capacity_w: [out-of-range] must be > 0"
