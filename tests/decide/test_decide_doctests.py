"""Run every doctest of wattwise.decide; every policy module must carry at least one."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import wattwise.decide

MODULES = sorted(m.name for m in pkgutil.iter_modules(wattwise.decide.__path__, "wattwise.decide."))
POLICY_MODULES = {
    "wattwise.decide.allocation",
    "wattwise.decide.baselines",
    "wattwise.decide.base",
    "wattwise.decide.cooling",
    "wattwise.decide.energy",
    "wattwise.decide.event_shift",
    "wattwise.decide.index",
    "wattwise.decide.load_sharing",
    "wattwise.decide.migration",
}


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0
    if name in POLICY_MODULES:
        assert result.attempted > 0


def test_policies_store_init_params_under_the_same_names() -> None:
    import inspect

    from wattwise.decide import allocation, baselines, cooling, energy, event_shift, load_sharing, migration

    classes = [
        c
        for mod in (allocation, baselines, cooling, energy, event_shift, load_sharing, migration)
        for _, c in inspect.getmembers(mod, inspect.isclass)
        if c.__module__ == mod.__name__ and hasattr(c, "decide")
    ]
    assert len(classes) >= 12
    for cls in classes:
        obj = cls()
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name != "self" and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                assert hasattr(obj, name), f"{cls.__name__} does not store {name}"
        assert isinstance(obj.name, str)
        assert cls.__doc__
