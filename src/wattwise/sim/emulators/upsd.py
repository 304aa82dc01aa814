"""Run the real NUT ``upsd`` (Debian nut-server) on loopback, with its drivers, in a temp dir.

Devices are either ``dummy-ups`` replaying a ``.dev``/``.seq`` file, or a wattwise
:class:`~wattwise.sim.emulators.nut_socket.NutSocketEmulator` serving the driver socket
(upsd never execs drivers, so any process on that socket is a driver). Every process is a
child in the foreground, kept by PID and stopped by PID.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

NUT_BIN_DIRS = (Path("/lib/nut"), Path("/usr/lib/nut"), Path("/usr/libexec/nut"))
SOCKET_DRIVER = "wattwise"


def nut_binary(name: str) -> str | None:
    """Path of a NUT daemon binary (``upsd``, ``dummy-ups``), or ``None``."""
    for d in NUT_BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    return None


@dataclass
class UpsdConfig:
    """What one upsd serves.

    Attributes:
        root: Temp dir for etc/ and state/.
        port: TCP port on 127.0.0.1.
        users: upsd.users logins ``{name: password}``; each may SET and run every command.
        dummy: ``{ups_name: path of a .dev or .seq file}`` replayed by dummy-ups.
        sockets: ups names served by wattwise socket emulators (started by the caller).
        tls_certpath: NSS certificate database upsd serves STARTTLS from (NUT built with NSS).
        tls_certident: ``(nickname, db password)`` of upsd's certificate in that database.
    """

    root: Path
    port: int
    users: Mapping[str, str] = field(default_factory=lambda: {"admin": "secret"})
    dummy: Mapping[str, Path] = field(default_factory=dict)
    sockets: Sequence[str] = ()
    tls_certpath: Path | None = None
    tls_certident: tuple[str, str] | None = None

    @property
    def etc(self) -> Path:
        """NUT_CONFPATH."""
        return self.root / "etc"

    @property
    def state(self) -> Path:
        """NUT_STATEPATH (driver sockets live here)."""
        return self.root / "state"

    def socket_path(self, ups_name: str) -> str:
        """Where upsd looks for the socket of a wattwise-served device."""
        return str(self.state / f"{SOCKET_DRIVER}-{ups_name}")

    def write(self) -> None:
        """Write ups.conf, upsd.conf, upsd.users and copy the dummy files."""
        self.etc.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(parents=True, exist_ok=True)
        sections = []
        for name, src in self.dummy.items():
            dst = self.etc / f"{name}{src.suffix}"
            shutil.copyfile(src, dst)
            sections.append(f"[{name}]\n  driver = dummy-ups\n  port = {dst.name}\n")
        sections += [f"[{name}]\n  driver = {SOCKET_DRIVER}\n  port = none\n" for name in self.sockets]
        (self.etc / "ups.conf").write_text("maxretry = 3\nretrydelay = 1\n" + "".join(sections))
        tls = ""
        if self.tls_certpath is not None and self.tls_certident is not None:
            tls = f'CERTPATH {self.tls_certpath}\nCERTIDENT "{self.tls_certident[0]}" "{self.tls_certident[1]}"\n'
        (self.etc / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {self.port}\nMAXAGE 30\n{tls}")
        users = "".join(f"[{u}]\n  password = {p}\n  actions = SET\n  instcmds = ALL\n" for u, p in self.users.items())
        (self.etc / "upsd.users").write_text(users)
        os.chmod(self.etc / "upsd.users", 0o640)

    def env(self) -> dict[str, str]:
        """Environment for NUT processes."""
        return {
            **os.environ,
            "NUT_CONFPATH": str(self.etc),
            "NUT_STATEPATH": str(self.state),
            "NUT_ALTPIDPATH": str(self.state),
        }


class UpsdProcess:
    """The upsd daemon and its dummy-ups drivers, as child processes.

    Args:
        config: What to serve.
    """

    def __init__(self, config: UpsdConfig) -> None:
        self.config = config
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def upsd_pid(self) -> int | None:
        """PID of upsd once started."""
        return self.procs[-1].pid if self.procs else None

    def _spawn(self, argv: list[str]) -> None:
        log = open(self.config.root / f"{Path(argv[0]).name}.log", "ab")  # noqa: SIM115 - lives with the child
        self.procs.append(subprocess.Popen(argv, env=self.config.env(), stdout=log, stderr=subprocess.STDOUT))
        log.close()

    def start_drivers(self) -> None:
        """Write the config and start one dummy-ups per dummy device (before upsd)."""
        self.config.write()
        dummy = nut_binary("dummy-ups")
        if self.config.dummy and dummy is None:
            raise FileNotFoundError("dummy-ups not installed (apt-get install nut-server)")
        for name in self.config.dummy:
            self._spawn(
                [str(dummy), "-a", name, "-u", "root", "-F"] if os.geteuid() == 0 else [str(dummy), "-a", name, "-F"]
            )

    def start_upsd(self) -> None:
        """Start upsd once every driver socket exists (upsd retries a missing one only after ~1 s)."""
        upsd = nut_binary("upsd")
        if upsd is None:
            raise FileNotFoundError("upsd not installed (apt-get install nut-server)")
        sockets = [self.config.state / f"dummy-ups-{n}" for n in self.config.dummy]
        sockets += [Path(self.config.socket_path(n)) for n in self.config.sockets]
        deadline = time.monotonic() + 5.0
        while not all(p.exists() for p in sockets) and time.monotonic() < deadline:
            time.sleep(0.005)
        self._spawn([upsd, "-u", "root", "-F"] if os.geteuid() == 0 else [upsd, "-F"])

    async def wait_ready(self, ups_names: Sequence[str], timeout_s: float = 5.0) -> None:
        """Wait until every named device answers ``ups.status`` with data (not ``WAIT``).

        Raises:
            TimeoutError: Not ready in time.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        pending = set(ups_names)
        while pending:
            if loop.time() > deadline:
                raise TimeoutError(f"upsd not ready for {sorted(pending)[:5]} within {timeout_s} s")
            pending = {n for n in pending if not await self._ready(n)}
            if pending:
                await asyncio.sleep(0.05)

    async def _ready(self, ups: str) -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.config.port)
        except OSError:
            return False
        try:
            writer.write(f"GET VAR {ups} ups.status\n".encode())
            line = (await reader.readline()).decode()
            return line.startswith("VAR ") and "WAIT" not in line
        finally:
            writer.close()

    def stop(self) -> None:
        """SIGTERM every child by PID (upsd first), then reap them."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()
