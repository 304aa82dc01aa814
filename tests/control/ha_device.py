"""A device emulator for the HA tests: a FencedDriver behind HTTP, logging what it executes.

POST /apply takes an ``Action`` (JSON) and answers an ``ActionResult``. The device executes a
command id at most once (idempotency by command id, as real commands are idempotent) and logs
every executed, duplicate and refused command as a JSON line with the wall time.

Run: python ha_device.py --port 18080 --log /tmp/device.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wattwise.control.fencing import FencedDriver, FencingGate
from wattwise.model.values import Action, ActionKind, ActionResult, Reading


class SinkDriver:
    """The 'hardware': executes each command id once and appends it to the log."""

    name = "sink"

    def __init__(self, log: Path) -> None:
        self.log = log
        self.done: set[str] = set()

    def write(self, event: str, action: Action, message: str = "") -> None:
        line = json.dumps(
            {
                "event": event,
                "command_id": action.command_id,
                "target_id": action.target_id,
                "token": action.fencing_token,
                "t": time.time(),
                "message": message,
            }
        )
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def supports(self, kind: ActionKind) -> bool:
        return True

    async def read(self) -> list[Reading]:
        return []

    async def apply(self, action: Action) -> ActionResult:
        if action.command_id in self.done:
            self.write("duplicate", action)
            return ActionResult(command_id=action.command_id, ok=True, message="already applied")
        self.done.add(action.command_id)
        self.write("executed", action)
        return ActionResult(command_id=action.command_id, ok=True)

    async def close(self) -> None:
        return None


def make_app(log: Path) -> Starlette:
    sink = SinkDriver(log)
    fenced = FencedDriver(sink, FencingGate(), domain="hall-1")

    async def apply(request: Request) -> Response:
        action = Action.model_validate_json(await request.body())
        result = await fenced.apply(action)
        if not result.ok:
            sink.write("refused", action, result.message)
        return Response(result.model_dump_json(), media_type="application/json")

    return Starlette(routes=[Route("/apply", apply, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    uvicorn.run(make_app(args.log), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
