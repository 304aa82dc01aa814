"""NUT over STARTTLS against the real upsd (NSS build), certificate verified by default."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from conftest import REPO, free_port
from drivers.peers import need_nut, nss_certificate
from wattwise.drivers.nut import NutDriver
from wattwise.drivers.nut_client import NutEndpoint
from wattwise.drivers.retry import RetryPolicy
from wattwise.errors import DeviceUnavailable
from wattwise.sim.emulators.upsd import UpsdConfig, UpsdProcess

FAST = RetryPolicy(timeout_s=2.0, attempts=1)


def test_starttls_verified_against_its_ca_and_refused_without(tmp_path: Path) -> None:
    need_nut()
    db, ca, ident = nss_certificate(tmp_path)
    fixture = REPO / "tests" / "fixtures" / "nut" / "quirky-ups.dev"
    upsd = UpsdProcess(
        UpsdConfig(tmp_path / "nut", free_port(), dummy={"q": fixture}, tls_certpath=db, tls_certident=ident)
    )

    async def scenario() -> None:
        await upsd.wait_ready(["q"], timeout_s=10.0)
        trusted = NutDriver("ups-q", "q", NutEndpoint(port=upsd.config.port, tls=True, ca_file=str(ca)), retry=FAST)
        values = {(r.device_id, r.metric): r.value for r in await trusted.read()}
        assert values[("ups-q", "battery_charge_frac")] == pytest.approx(0.42)
        await trusted.close()
        stranger = NutDriver("ups-q", "q", NutEndpoint(port=upsd.config.port, tls=True), retry=FAST)
        with pytest.raises(DeviceUnavailable, match="TLS"):
            await stranger.read()  # self-signed: not in the system trust store
        await stranger.close()

    try:
        upsd.start_drivers()
        upsd.start_upsd()
        asyncio.run(scenario())
    finally:
        upsd.stop()
