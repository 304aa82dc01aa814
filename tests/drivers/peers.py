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


V3_USER, V3_AUTH, V3_PRIV = "wattwise", "authpass123", "privpass123"
V3_AUTH_ONLY_USER = "wattwise-auth"


@contextmanager
def running_snmpsimd(recording: Path) -> Iterator[int]:
    """Debian snmpsimd serving ``recording`` (community = file stem) with a v3 user; yields the UDP port."""
    import os
    import shutil
    import subprocess
    import tempfile
    import time

    from conftest import need_binary

    snmpsimd = need_binary("snmpsimd")
    snmpget = need_binary("snmpget")
    # snmpsimd drops to user nobody: pytest's tmp dirs (mode 700 parents) are unreadable to it.
    root = Path(tempfile.mkdtemp(prefix="wattwise-snmpsim-"))
    os.chmod(root, 0o755)
    data, cache = root / "data", root / "cache"
    data.mkdir(parents=True)
    cache.mkdir()
    shutil.copy(recording, data / recording.name)
    for p in (root, data, cache, data / recording.name):
        os.chmod(p, 0o777 if p == cache else 0o755 if p.is_dir() else 0o644)
    port = free_port()
    argv = [
        snmpsimd,
        f"--data-dir={data}",
        f"--cache-dir={cache}",
        f"--agent-udpv4-endpoint=127.0.0.1:{port}",
        f"--v3-user={V3_USER}",
        f"--v3-auth-key={V3_AUTH}",
        "--v3-auth-proto=SHA",
        f"--v3-priv-key={V3_PRIV}",
        "--v3-priv-proto=AES",
        f"--v3-user={V3_AUTH_ONLY_USER}",
        f"--v3-auth-key={V3_AUTH}",
        "--v3-auth-proto=SHA",
        f"--logging-method=file:{root / 'snmpsimd.log'}",
    ]
    if os.geteuid() == 0:
        argv += ["--process-user=nobody", "--process-group=nogroup"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5.0
        probe = [
            snmpget,
            "-v2c",
            "-c",
            recording.stem,
            "-t",
            "0.1",
            "-r",
            "0",
            f"127.0.0.1:{port}",
            "1.3.6.1.2.1.1.5.0",
        ]
        while subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            assert proc.poll() is None, "snmpsimd exited"
            assert time.monotonic() < deadline, "snmpsimd not ready in 5 s"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        shutil.rmtree(root, ignore_errors=True)


def nss_certificate(root: Path) -> tuple[Path, Path, tuple[str, str]]:
    """A self-signed cert for 127.0.0.1 in a fresh NSS database: ``(db dir, CA pem, (nickname, db password))``."""
    import subprocess

    from conftest import need_binary

    openssl, certutil, pk12util = need_binary("openssl"), need_binary("certutil"), need_binary("pk12util")
    key, cert, p12, db, pw = root / "key.pem", root / "cert.pem", root / "upsd.p12", root / "nssdb", root / "pw.txt"
    db.mkdir()
    pw.write_text("nsspass\n")
    run = lambda *argv: subprocess.run(argv, check=True, capture_output=True)  # noqa: E731
    run(
        openssl,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
    )
    run(
        openssl,
        "pkcs12",
        "-export",
        "-in",
        str(cert),
        "-inkey",
        str(key),
        "-out",
        str(p12),
        "-name",
        "upsd",
        "-passout",
        "pass:p12pass",
    )
    run(certutil, "-N", "-d", f"sql:{db}", "-f", str(pw))
    run(pk12util, "-i", str(p12), "-d", f"sql:{db}", "-k", str(pw), "-W", "p12pass")
    return db, cert, ("upsd", "nsspass")
