"""Shared fixtures: real peers on loopback, free ports, the skip-in-CI rule."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
DATASETS = Path(os.environ.get("WATTWISE_DATASETS_DIR", REPO.parent / "shared" / "datasets"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(condition: bool, why: str) -> None:
    """Skip when a real peer or data set is missing; in CI (CI=true) fail instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {why}")
    pytest.skip(why)


def need_binary(name: str) -> str:
    """Path of a peer binary (upsd, snmpsimd, etcd...), or skip/fail as ``need`` does."""
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name, Path("/lib/nut") / name) if p.exists()),
        None,
    )
    need(path is not None, f"{name} is not installed (bash scripts/setup.sh installs it)")
    assert path is not None
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """Whether something listens on host:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@pytest.fixture
def datasets_dir() -> Path:
    """The shared evaluation data (skips/fails when absent)."""
    need(DATASETS.is_dir(), f"datasets not found at {DATASETS}")
    return DATASETS


@pytest.fixture
def tmp_port() -> Iterator[int]:
    """A free loopback port."""
    yield free_port()
