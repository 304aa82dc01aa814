"""Start real peers for driver tests: upsd (+ dummy-ups / wattwise socket drivers)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from conftest import free_port, need
from wattwise.sim.emulators.upsd import UpsdConfig, UpsdProcess, nut_binary


def need_nut() -> None:
    need(nut_binary("upsd") is not None and nut_binary("dummy-ups") is not None, "nut-server is not installed")


@contextmanager
def running_upsd(root: Path, dummy: Mapping[str, Path], sockets: Sequence[str] = ()) -> Iterator[UpsdProcess]:
    """upsd with dummy-ups drivers, ready; stopped by PID on exit (socket drivers are the caller's)."""
    need_nut()
    proc = UpsdProcess(UpsdConfig(root, free_port(), dummy=dummy, sockets=sockets))
    try:
        proc.start_drivers()
        proc.start_upsd()
        if dummy:
            asyncio.run(proc.wait_ready(list(dummy), timeout_s=30.0))
        yield proc
    finally:
        proc.stop()
