"""Real peers for the HA tests: an etcd server, the fenced device emulator, controller processes.

Every process is started as a child in the foreground on free loopback ports and stopped by
its PID (never by name).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conftest import free_port, need_binary, port_open

HERE = Path(__file__).resolve().parent
PG_DSN = os.environ.get("WATTWISE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def stop(proc: subprocess.Popen[Any], timeout_s: float = 5.0) -> None:
    """SIGTERM by PID, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


def wait_until(cond: Any, timeout_s: float, what: str, step_s: float = 0.02) -> None:
    """Poll ``cond()`` until true or fail the test."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(step_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@contextmanager
def etcd_server(data_dir: Path) -> Iterator[str]:
    """A fresh single-member etcd on free loopback ports; yields the client URL."""
    etcd = need_binary("etcd")
    client, peer = free_port(), free_port()
    curl, purl = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    args = [etcd, "--name", "t", "--data-dir", str(data_dir), "--listen-client-urls", curl,
            "--advertise-client-urls", curl, "--listen-peer-urls", purl,
            "--initial-advertise-peer-urls", purl, "--initial-cluster", f"t={purl}",
            "--log-level", "error", "--logger", "zap"]  # fmt: skip
    with (data_dir.parent / "etcd.log").open("w") as log:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)

    def healthy() -> bool:
        try:
            return httpx.get(curl + "/health", timeout=0.5).json().get("health") == "true"
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, 10.0, "etcd /health")
        yield curl
    finally:
        stop(proc)


def postgres_available() -> bool:
    """Whether the shared PostgreSQL answers on 127.0.0.1:5432."""
    return port_open("127.0.0.1", 5432)


@dataclass
class Device:
    """The fenced device emulator process and its execution log."""

    proc: subprocess.Popen[Any]
    url: str
    log: Path

    def events(self) -> list[dict[str, Any]]:
        """Every line the device logged: executed, duplicate, refused."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def executed(self) -> list[dict[str, Any]]:
        """Commands the device executed (each should appear once)."""
        return [e for e in self.events() if e["event"] == "executed"]


@contextmanager
def device(tmp: Path) -> Iterator[Device]:
    """Start ``ha_device.py`` (a FencedDriver behind HTTP) on a free port."""
    port = free_port()
    log = tmp / "device.jsonl"
    cmd = [sys.executable, str(HERE / "ha_device.py"), "--port", str(port), "--log", str(log)]
    with (tmp / "device.err").open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_until(lambda: port_open("127.0.0.1", port), 15.0, "device emulator")
        yield Device(proc, f"http://127.0.0.1:{port}", log)
    finally:
        stop(proc)


@dataclass
class Controller:
    """One controller process and what it printed (JSON lines)."""

    name: str
    proc: subprocess.Popen[Any]
    out: Path
    events: list[dict[str, Any]] = field(default_factory=list)

    def read(self) -> list[dict[str, Any]]:
        """Parse everything printed so far."""
        lines = self.out.read_text().splitlines() if self.out.exists() else []
        self.events = [json.loads(line) for line in lines if line.startswith("{") and line.endswith("}")]
        return self.events

    def tokens(self) -> list[int]:
        """Tokens of every leadership this controller won."""
        return [int(e["token"]) for e in self.read() if e["event"] == "leader"]


def controller(
    tmp: Path, name: str, backend: str, endpoint: str, device_url: str, commands: int, period_s: float,
    stall_at: int = -1, stall_s: float = 0.0,
) -> Controller:  # fmt: skip
    """Start ``ha_controller.py`` as a separate process."""
    out = tmp / f"{name}.out"
    cmd = [sys.executable, str(HERE / "ha_controller.py"), "--backend", backend, "--endpoint", endpoint,
           "--name", name, "--device-url", device_url, "--journal", str(tmp / "journal.jsonl"),
           "--commands", str(commands), "--period-s", str(period_s),
           "--stall-at", str(stall_at), "--stall-s", str(stall_s)]  # fmt: skip
    with out.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    return Controller(name, proc, out)
