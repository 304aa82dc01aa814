"""A controller process for the HA tests: campaign, then send a numbered event's actions.

While leader it walks the actions of one power event (``load-000`` ... shed in order); for
each it journals ``sent`` before sending (with its fencing token) and ``acked``/``failed``
after. The journal is a shared JSON-lines file (appends are atomic), so a new leader resumes
where the old one stopped: from the journal it knows what was acked, and what was sent but
not acked is sent again (the device executes a command id at most once). A ``fenced``
refusal makes it resign. Prints JSON lines: leader, done, fenced.

Run: python ha_controller.py --backend etcd --endpoint http://127.0.0.1:2379 --name c1 ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import httpx

from wattwise.act.base import JournalEntry, Phase
from wattwise.control.leader import EtcdLeaderElector, LeaderElector, PostgresLeaderElector
from wattwise.model.values import Action, ActionKind, ActionResult

DOMAIN = "hall-1"


def say(**fields: object) -> None:
    print(json.dumps({**fields, "pid": os.getpid(), "t": time.time()}), flush=True)


class FileJournal:
    """Append-only JSON-lines journal shared by the controllers (O_APPEND + fsync)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, entry: JournalEntry) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(asdict(entry)) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def acked(self) -> set[str]:
        if not self.path.exists():
            return set()
        done: set[str] = set()
        for line in self.path.read_text().splitlines():
            if line.endswith("}"):
                entry = json.loads(line)
                if entry["phase"] == Phase.ACKED:
                    done.add(entry["command_id"])
        return done


def make_elector(backend: str, endpoint: str, name: str) -> LeaderElector:
    if backend == "etcd":
        return EtcdLeaderElector(endpoint, DOMAIN, name, ttl_s=2.0, poll_s=0.1)
    return PostgresLeaderElector(endpoint, DOMAIN, name, lease_s=2.0, poll_s=0.1)


async def lead(elector: LeaderElector, token: int, journal: FileJournal, http: httpx.AsyncClient,
               actions: list[Action], period_s: float, stall: tuple[int, float] | None) -> None:  # fmt: skip
    done = journal.acked()  # warm state: what the previous leader finished
    for i, base in enumerate(actions):
        if base.command_id in done:
            continue
        if not await elector.is_leader():
            return
        action = base.model_copy(update={"fencing_token": token})
        journal.append(JournalEntry.of(action, Phase.SENT, time.time()))
        if stall is not None and i == stall[0]:
            # A process pause between the leadership check and the send (GC, swap, SIGSTOP):
            # it blocks the whole event loop, keepalive included, so the lease expires.
            say(event="stall", name=elector.identity, token=token, target=action.target_id)
            time.sleep(stall[1])  # noqa: ASYNC251 - blocking on purpose
            stall = None
        resp = await http.post("/apply", content=action.model_dump_json())
        result = ActionResult.model_validate_json(resp.text)
        phase = Phase.ACKED if result.ok else Phase.FAILED
        journal.append(JournalEntry.of(action, phase, time.time(), message=result.message))
        if result.message.startswith("fenced"):
            say(event="fenced", name=elector.identity, token=token, message=result.message)
            await elector.resign()
            return
        await asyncio.sleep(period_s)
    say(event="done", name=elector.identity, token=token)
    while await elector.is_leader():  # noqa: ASYNC110 - polls the lease, there is no event to wait on
        await asyncio.sleep(0.1)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["etcd", "postgres"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--device-url", required=True)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--commands", type=int, default=100)
    parser.add_argument("--period-s", type=float, default=0.02)
    parser.add_argument("--stall-at", type=int, default=-1, help="freeze before sending this command")
    parser.add_argument("--stall-s", type=float, default=0.0)
    args = parser.parse_args()
    actions = [
        Action(kind=ActionKind.WORKLOAD_STOP, target_id=f"load-{i:03d}", decision_id="event-1", reason="feed A lost")
        for i in range(args.commands)
    ]
    elector = make_elector(args.backend, args.endpoint, args.name)
    journal = FileJournal(args.journal)
    stall = (args.stall_at, args.stall_s) if args.stall_at >= 0 else None
    async with httpx.AsyncClient(base_url=args.device_url, timeout=5.0) as http:
        while True:
            token = await elector.campaign()
            say(event="leader", name=args.name, token=token)
            await lead(elector, token, journal, http, actions, args.period_s, stall)
            stall = None


if __name__ == "__main__":
    asyncio.run(main())
