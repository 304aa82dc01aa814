"""``wattwise demo`` as a real subprocess: twin, controller, store and API in one process."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.conftest import EXAMPLES, REPO, free_port

WATTWISE = str(Path(sys.executable).parent / "wattwise")
TOKEN = re.compile(r"admin token \(shown once\): (\S+)")


@dataclass
class Demo:
    """A running ``wattwise demo`` and what it printed so far."""

    proc: subprocess.Popen[str]
    url: str
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)
    pump: threading.Thread | None = None

    def wait_for(self, pattern: re.Pattern[str], timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.proc.poll() is None, f"demo exited early: {self.seen}"
                continue
            self.seen.append(line)
            if m := pattern.search(line):
                return m
        raise AssertionError(f"{pattern.pattern!r} not printed in {timeout_s} s: {self.seen}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.pump is not None:
            self.pump.join(timeout=5.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def rest(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


def start_demo(tmp_path: Path, *args: str) -> Demo:
    port = free_port()
    cmd = [WATTWISE, "demo", "--port", str(port), "--store", str(tmp_path / "demo.duckdb"), *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    demo = Demo(proc, f"http://127.0.0.1:{port}")
    assert proc.stdout is not None
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            demo.lines.put(line)

    demo.pump = threading.Thread(target=pump, daemon=True)
    demo.pump.start()
    return demo


def _find(c: httpx.Client, detail: str, after_seq: int) -> dict[str, object] | None:
    """The journal entry with ``detail`` newer than ``after_seq`` (paging back; the journal is busy)."""
    before: int | None = None
    while True:
        params = {"limit": 500} if before is None else {"limit": 500, "before_seq": before}
        items = c.get("/api/v1/journal", params=params).json()["items"]
        hit = next((e for e in items if e["detail"] == detail and e["kind"] == "event"), None)
        if hit is not None or not items or items[-1]["seq"] <= after_seq:
            return hit
        before = items[-1]["seq"]


def test_demo_serves_live_state_and_journals_a_scheduled_feed_loss(tmp_path: Path) -> None:
    demo = start_demo(tmp_path, "--duration-s", "20", "--speed", "10", "--lead-in-s", "60")
    try:
        token = demo.wait_for(TOKEN, 60.0).group(1)
        assert f"{demo.url}/#token={token}" in demo.rest()
        with httpx.Client(base_url=demo.url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0) as c:
            status = c.get("/api/v1/status").json()
            assert status["mode"] == "armed" and status["leader"] == "self"
            before = c.get("/api/v1/journal", params={"limit": 1}).json()["total"]
            loss = None
            while loss is None and demo.proc.poll() is None:
                time.sleep(1.0)
                loss = _find(c, "utility-a: source lost", before)
            assert loss is not None, "the scheduled utility-a loss never reached the journal"
            assert loss["seq"] > before and loss["actor"] == "controller"
            status = c.get("/api/v1/status").json()
            assert status["running"] and status["mode"] == "armed"
            head = c.get("/api/v1/headroom", params={"max_pdus": 1}).json()
            assert head["source"] == "telemetry" and head["pdus_total"] == 200
        assert demo.proc.wait(timeout=30) == 0  # --duration-s ends it cleanly
        assert "wattwise demo stopped" in demo.rest()
    finally:
        demo.close()


def test_demo_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    demo = start_demo(tmp_path, "--site", str(EXAMPLES / "single-rack.yaml"), "--speed", "5")
    try:
        token = demo.wait_for(TOKEN, 30.0).group(1)
        with httpx.Client(base_url=demo.url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0) as c:
            deadline = time.monotonic() + 10.0
            while c.get("/api/v1/status").json()["last_cycle_t_s"] is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert c.get("/api/v1/status").json()["site_id"] == "single-rack"
        demo.proc.send_signal(signal.SIGTERM)
        assert demo.proc.wait(timeout=15) == 0
        assert "wattwise demo stopped" in demo.rest()
    finally:
        demo.close()
