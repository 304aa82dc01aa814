"""Real peers for telemetry tests, each started on a free loopback port and stopped by PID."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.conftest import free_port, need, need_binary, port_open

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open("127.0.0.1", port):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"peer exited with {proc.returncode}")
        time.sleep(0.02)
    raise RuntimeError(f"port {port} not open after {timeout_s} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """Our own nats-server with JetStream (file store under tmp_path)."""
    binary = need_binary("nats-server")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(port, proc)
    yield f"nats://127.0.0.1:{port}"
    _stop(proc)


@pytest.fixture
def mqtt_port(tmp_path: Path) -> Iterator[int]:
    """Our own mosquitto on a free port."""
    binary = need_binary("mosquitto")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port, proc)
    yield port
    _stop(proc)


@dataclass
class Prometheus:
    """A running Prometheus and its query API."""

    url: str
    scrape_port: int

    def query(self, expr: str) -> list[dict[str, object]]:
        """Instant query; the result vector."""
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", body
        result: list[dict[str, object]] = body["data"]["result"]
        return result


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    """Our own Prometheus scraping 127.0.0.1:<scrape_port> every second."""
    binary = need_binary("prometheus")
    scrape_port, port = free_port(), free_port()
    conf = tmp_path / "prometheus.yml"
    conf.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: wattwise\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{scrape_port}']\n"
    )
    proc = subprocess.Popen(
        [binary, f"--config.file={conf}", f"--storage.tsdb.path={tmp_path / 'prom'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_port(port, proc)
    yield Prometheus(f"http://127.0.0.1:{port}", scrape_port)
    _stop(proc)


@dataclass
class PgCluster:
    """A throwaway PostgreSQL cluster of our own (restartable, unlike the shared server)."""

    data_dir: Path
    port: int

    @property
    def dsn(self) -> str:
        """DSN of its ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> list[str]:
        cmd = [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def start_cmd(self) -> list[str]:
        """Command that starts the cluster and waits until it accepts connections."""
        opts = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        return self._pg_ctl("-w", "-l", str(self.data_dir / "log"), "-o", opts, "start")

    def stop_cmd(self, mode: str = "immediate") -> list[str]:
        """Command that stops it (``immediate`` is a crash: no checkpoint)."""
        return self._pg_ctl("-w", "-m", mode, "stop")


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """initdb + pg_ctl a private cluster on a free port (as user postgres when we are root)."""
    need((PG_BIN / "initdb").exists(), f"PostgreSQL 15 server binaries in {PG_BIN}")
    root = Path(tempfile.mkdtemp(prefix="ww-pg-", dir="/tmp"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    initdb = [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    if os.geteuid() == 0:
        initdb = ["runuser", "-u", "postgres", "--", *initdb]
    subprocess.run(initdb, check=True, capture_output=True)
    cluster = PgCluster(data, free_port())
    subprocess.run(cluster.start_cmd(), check=True, capture_output=True)
    yield cluster
    subprocess.run(cluster.stop_cmd(), check=False, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
