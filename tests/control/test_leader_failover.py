"""Failover with real processes: kill -9 (or freeze) the leader mid-event.

Three controller processes campaign for one power domain (etcd lease, TTL 2 s; or a
PostgreSQL advisory lock); the leader sheds 120 numbered loads through a fenced device
emulator. The test kills the leader with SIGKILL while it is sending and asserts that a
follower takes over within 3 s, that every command is executed exactly once and none is lost,
and that a command carrying the dead leader's token is refused by the device.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from conftest import need
from control.ha_support import (
    PG_DSN,
    Controller,
    Device,
    controller,
    device,
    etcd_server,
    postgres_available,
    stop,
    wait_until,
)
from wattwise.model.values import Action, ActionKind, ActionResult

COMMANDS = 120
PERIOD_S = 0.02
TAKEOVER_GOAL_S = 3.0

pytestmark = [pytest.mark.peer("etcd"), pytest.mark.timeout(90)]


def _leader(ctrls: list[Controller]) -> tuple[Controller, int]:
    """The controller that currently leads, and its token (highest token printed)."""
    best = max(((c, max(c.tokens(), default=-1)) for c in ctrls), key=lambda ct: ct[1])
    assert best[1] >= 0, "no leader yet"
    return best


def _run_and_kill(tmp: Path, backend: str, endpoint: str, dev: Device, sig: int) -> dict[str, float]:
    ctrls = [controller(tmp, f"c{i}", backend, endpoint, dev.url, COMMANDS, PERIOD_S) for i in range(3)]
    try:
        wait_until(lambda: len(dev.executed()) >= COMMANDS // 4, 30.0, "a quarter of the event executed")
        old, old_token = _leader(ctrls)
        executed_before = len(dev.executed())
        t_kill = time.time()
        os.kill(old.proc.pid, sig)
        wait_until(lambda: len(dev.executed()) >= COMMANDS, 30.0, "the whole event executed", step_s=0.05)
        if sig == signal.SIGSTOP:
            os.kill(old.proc.pid, signal.SIGCONT)  # the deposed leader wakes up believing it leads
            time.sleep(1.0)
        executed = dev.executed()
        new_token = max(e["token"] for e in executed)
        first_new = min(e["t"] for e in executed if e["token"] > old_token)
        takeover_s = first_new - t_kill
        counts = Counter(e["target_id"] for e in executed)
        assert executed_before < COMMANDS, "leader finished before it was killed: not mid-event"
        assert sorted(counts) == [f"load-{i:03d}" for i in range(COMMANDS)], "a command was lost"
        assert max(counts.values()) == 1, f"executed twice: {[k for k, v in counts.items() if v > 1]}"
        # Nothing from the old leader was executed after the new leader's first command.
        assert not [e for e in executed if e["token"] == old_token and e["t"] > first_new]
        assert new_token > old_token
        # A command carrying the deposed leader's token is refused by the device.
        stale = Action(kind=ActionKind.WORKLOAD_STOP, target_id="load-stale", decision_id="x", fencing_token=old_token)
        result = ActionResult.model_validate_json(httpx.post(dev.url + "/apply", content=stale.model_dump_json()).text)
        assert not result.ok
        assert result.message == f"fenced: token {old_token} < {new_token}"
        print(f"{backend} {signal.Signals(sig).name}: takeover {takeover_s:.2f} s (goal < {TAKEOVER_GOAL_S} s), "
              f"old token {old_token} -> {new_token}, {executed_before}/{COMMANDS} done before the kill")  # fmt: skip
        assert takeover_s < TAKEOVER_GOAL_S, f"takeover took {takeover_s:.2f} s"
        return {"takeover_s": takeover_s, "old_token": old_token, "new_token": new_token}
    finally:
        for c in ctrls:
            if c.proc.poll() is None:
                os.kill(c.proc.pid, signal.SIGCONT)
            stop(c.proc)


def test_etcd_failover_kill9(tmp_path: Path) -> None:
    with etcd_server(tmp_path / "etcd") as url, device(tmp_path) as dev:
        _run_and_kill(tmp_path, "etcd", url, dev, signal.SIGKILL)


def test_etcd_frozen_leader_is_fenced(tmp_path: Path) -> None:
    """SIGSTOP the leader past its lease, let a follower lead, wake the old one: it cannot act."""
    with etcd_server(tmp_path / "etcd") as url, device(tmp_path) as dev:
        _run_and_kill(tmp_path, "etcd", url, dev, signal.SIGSTOP)
        refused_old = [e for e in dev.events() if e["event"] == "refused" and e["target_id"] != "load-stale"]
        # Whether the woken leader noticed its lapsed lease first or tried to send (and was
        # refused), it executed nothing: checked in _run_and_kill. Refusals, if any, say why.
        assert all(e["message"].startswith("fenced: token") for e in refused_old)


@pytest.mark.peer("postgres")
def test_postgres_failover_kill9(tmp_path: Path) -> None:
    need(postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    with device(tmp_path) as dev:
        _run_and_kill(tmp_path, "postgres", PG_DSN, dev, signal.SIGKILL)
