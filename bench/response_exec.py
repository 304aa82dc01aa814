"""The example's outage response through the actuator alone: where its controller-side time goes.

Run: ``.venv/bin/python bench/response_exec.py [--device-cost-s 0.003] [--repeat 3]``

The two-hall example (UPS batteries sized to 400 s of their load, as ``bench/event_ack.py``
sizes them) runs on the twin for 30 s; both utilities are lost with the generators failed;
the planner (MILP allocation) makes the outage's decision. That decision is then executed,
armed, by the real actuator with the default interlocks and a DuckDB journal in memory,
against stand-in devices: an orchestrator (one exchange per service command) and one SNMP
batch driver per PDU (one exchange per SET). Every exchange takes 1 ms of latency and
``--device-cost-s`` of work that all devices share one at a time, as the single device
process of ``bench/event_ack.py`` does. Printed: the execute's wall time, journal writes and
their time, exchanges by kind; with the device cost 0, the wall time is the controller's own.
No network, no second process: for comparing actuator changes in one run, not a latency goal.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import event_ack  # noqa: E402
from wattwise.act.base import JournalEntry, Mode  # noqa: E402
from wattwise.control.assemble import assemble  # noqa: E402
from wattwise.control.loop import LatestValues  # noqa: E402
from wattwise.decide.allocation import MilpAllocationPolicy  # noqa: E402
from wattwise.drivers.base import Driver  # noqa: E402
from wattwise.model.clock import WallClock  # noqa: E402
from wattwise.model.values import Action, ActionKind, ActionResult, Reading  # noqa: E402
from wattwise.sim.driver import TwinDriver  # noqa: E402
from wattwise.sim.twin import Twin  # noqa: E402
from wattwise.store.duckdb_store import DuckDBStore  # noqa: E402


class Devices:
    """What the stand-ins share: one device 'CPU' and the exchange counts."""

    def __init__(self, cost_s: float) -> None:
        self.cost_s = cost_s
        self.cpu = asyncio.Lock()
        self.exchanges: Counter[str] = Counter()

    async def work(self, kind: str, extra_s: float = 0.0) -> None:
        self.exchanges[kind] += 1
        await asyncio.sleep(0.001)
        async with self.cpu:
            await asyncio.sleep(self.cost_s + extra_s)


class Orchestrator:
    name = "orchestrator"

    def __init__(self, devices: Devices) -> None:
        self.devices = devices

    def supports(self, kind: ActionKind) -> bool:
        return True

    async def read(self) -> list[Reading]:
        return []

    async def apply(self, action: Action) -> ActionResult:
        await self.devices.work("orchestrator")
        return ActionResult(command_id=action.command_id, ok=True)

    async def close(self) -> None:
        return None


class Pdu(Orchestrator):
    name = "pdu"

    async def apply_many(self, actions: Sequence[Action]) -> list[ActionResult]:
        await self.devices.work("snmp_set", 0.0001 * len(actions))
        return [ActionResult(command_id=a.command_id, ok=True) for a in actions]


async def one(cost_s: float) -> dict[str, float]:
    site = event_ack.sized_batteries(event_ack.base_site("example"), 400.0)
    twin = Twin(site, seed=0, record_timeline=False)
    store = DuckDBStore(":memory:")
    policies = [MilpAllocationPolicy(time_limit_s=0.5)]
    asm = assemble(site, [TwinDriver(twin)], store, WallClock(), Mode.ARMED, policies=policies, min_dwell_s=10.0)
    devices = Devices(cost_s)
    orchestrator = Orchestrator(devices)
    pdus: dict[str, Pdu] = {}
    pdu_of = {o.id: p.id for p in site.pdus for o in p.outlets}

    def route(action: Action) -> Driver | None:
        if action.kind in (ActionKind.OUTLET_OFF, ActionKind.OUTLET_ON):
            return pdus.setdefault(pdu_of[action.target_id], Pdu(devices))
        return orchestrator

    asm.actuator.router = route
    latest = LatestValues()

    def take() -> None:
        for r in twin.readings():
            latest.values[(r.device_id, r.metric)] = (r.value, r.t_s)

    for _ in range(5):  # half a minute of normal readings (the forecaster's peaks)
        twin.run_for(6.0)
        take()
        asm.planner.plan(latest, twin.t_s, None)
    twin.ch.gen_failed[:] = True
    twin.ch.feed_available[:] = False
    twin.run_for(1.0)
    take()
    decisions, ctx = asm.planner.plan(latest, twin.t_s, "utility-a: source lost")
    ctx = replace(ctx, t_s=WallClock().now_s())
    writes = [0.0, 0.0]
    write = asm.actuator.journal.append_many

    def counted(entries: Sequence[JournalEntry]) -> None:
        t = time.perf_counter()
        write(entries)
        writes[0] += 1
        writes[1] += time.perf_counter() - t

    asm.actuator.journal.append_many = counted  # type: ignore[method-assign]
    t0 = time.perf_counter()
    verdicts = await asm.actuator.execute(decisions, ctx)
    wall_s = time.perf_counter() - t0
    store.close()
    return {
        "commands": float(len(verdicts)),
        "wall_s": wall_s,
        "journal_writes": writes[0],
        "journal_s": writes[1],
        **{k: float(v) for k, v in devices.exchanges.items()},
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--device-cost-s", type=float, default=0.003, help="work per exchange, one at a time, s")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    runs = [asyncio.run(one(args.device_cost_s)) for _ in range(args.repeat)]
    for k in runs[0]:
        vals = [r[k] for r in runs]
        print(f"{k:>15}: median {statistics.median(vals):.3f}  (runs: {', '.join(f'{v:.3f}' for v in vals)})")


if __name__ == "__main__":
    main()
