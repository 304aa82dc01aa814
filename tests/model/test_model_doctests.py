"""Run the doctests of every module in wattwise.model (the examples in the docs stay true)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import wattwise.model

MODULES = sorted(m.name for m in pkgutil.iter_modules(wattwise.model.__path__, "wattwise.model."))
WITH_EXAMPLES = {
    "wattwise.model.generate",
    "wattwise.model.power_rules",
    "wattwise.model.rule_index",
    "wattwise.model.rules",
}


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0
    if name in WITH_EXAMPLES:
        assert result.attempted > 0
