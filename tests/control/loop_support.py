"""Helper for the loop tests: the single-rack example in the twin, under one test policy."""

from __future__ import annotations

from collections.abc import Callable

from wattwise.act.base import Mode
from wattwise.control.assemble import Assembly, assemble
from wattwise.control.twin_run import TwinClock
from wattwise.decide.base import Policy
from wattwise.sim.driver import TwinDriver
from wattwise.sim.runner import build_twin
from wattwise.sim.scenario import parse_scenario
from wattwise.sim.twin import Twin
from wattwise.store.duckdb_store import DuckDBStore


def single_rack_armed(policy_for: Callable[[str], object], name: str) -> tuple[Twin, Assembly, str]:
    """The twin of ``examples/single-rack.yaml``, an armed assembly whose only policy is
    ``policy_for(low)`` (deciding routinely once a minute), and ``low``: a low-tier service
    nothing depends on."""
    sc = parse_scenario({"name": name, "site": "../examples/single-rack.yaml", "duration_s": 60})
    twin = build_twin(sc.model_copy(update={"source_file": "scenarios/x.yaml"}))
    needed = {d for s in twin.site.services for d in s.depends_on}
    low = next(s.id for s in twin.site.services if s.tier.value == "low" and s.id not in needed)
    policy: Policy = policy_for(low)  # type: ignore[assignment]
    a = assemble(
        twin.site,
        [TwinDriver(twin)],
        DuckDBStore(":memory:"),
        TwinClock(twin),
        Mode.ARMED,
        policies=[policy],
        decide_period_s=60.0,
    )
    return twin, a, low
