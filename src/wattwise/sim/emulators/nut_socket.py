"""A NUT *driver* process-equivalent: serves upsd's driver socket, backed by a wattwise Driver.

upsd (the real daemon) connects to ``$NUT_STATEPATH/<driver>-<ups>`` and speaks NUT's
driver/server socket protocol (docs/sock-protocol.txt): it sends ``DUMPALL``, ``PING``,
``INSTCMD <cmd> [TRACKING <id>]`` and ``SET <var> "<val>" [TRACKING <id>]``; we answer with
``SETINFO``, ``ADDCMD``, ``DATAOK``, ``DUMPDONE``, ``PONG`` and ``TRACKING <id> <status>``.
Instant commands become ``driver.apply(Action)``, so they really change the twin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from wattwise.drivers.base import Driver
from wattwise.errors import DriverError
from wattwise.model.metrics import PHASE_CURRENT, PHASE_POWER, phase_of_metric
from wattwise.model.ups_status import status_words
from wattwise.model.values import Action, ActionKind, Reading
from wattwise.sim.emulators.cache import read_devices

logger = logging.getLogger(__name__)

# NUT STAT_INSTCMD_* / STAT_SET_* codes carried by TRACKING answers.
_HANDLED, _UNKNOWN, _INVALID, _FAILED = 0, 1, 2, 3


@dataclass(frozen=True)
class NutDeviceSpec:
    """One NUT device served from a Driver.

    Attributes:
        ups_name: Name on upsd (``[section]`` of ups.conf).
        device_id: Site id whose readings become ``ups.*``/``battery.*``/``input.*``.
        outlet_ids: Site ids of outlets 1..N (``outlet.N.*``).
        device_type: ``ups``, ``pdu`` or ``ats``.
    """

    ups_name: str
    device_id: str
    outlet_ids: Sequence[str] = field(default_factory=tuple)
    device_type: str = "ups"


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def readings_to_vars(spec: NutDeviceSpec, readings: Sequence[Reading]) -> dict[str, str]:
    """Render readings as NUT variables, converting SI back to NUT's units (%, s, V...)."""
    out: dict[str, str] = {
        "device.mfr": "wattwise",
        "device.model": f"twin-{spec.device_type}",
        "device.type": spec.device_type,
        "ups.mfr": "wattwise",
        "ups.model": f"twin-{spec.device_type}",
        "driver.name": "wattwise-twin",
        "ups.status": "OL",
    }
    if spec.outlet_ids:
        out["outlet.count"] = str(len(spec.outlet_ids))
    by_outlet = {oid: n for n, oid in enumerate(spec.outlet_ids, start=1)}
    flags: float | None = None
    words: str | None = None
    for r in readings:
        if r.device_id == spec.device_id:
            if r.metric == "ups_status_flags":
                # The twin carries the words themselves in a tag; trust them over a bitmask.
                flags, words = r.value, dict(r.tags).get("ups.status")
            else:
                _device_var(out, r, spec.device_type)
        elif r.device_id in by_outlet:
            _outlet_var(out, by_outlet[r.device_id], r)
    if words:
        out["ups.status"] = words
    elif flags is not None:
        out["ups.status"] = status_words(int(flags)) or "OL"
    elif out.pop("_on_battery", "0") == "1":
        out["ups.status"] = "OB LB" if out.get("_low_battery") == "1" else "OB"
    out.pop("_on_battery", None)
    out.pop("_low_battery", None)
    return out


_SCALE_PCT = {"battery_charge_frac": "battery.charge", "load_frac": "ups.load", "efficiency_frac": "ups.efficiency"}
_PLAIN = {
    "battery_runtime_s": "battery.runtime",
    "battery_voltage_v": "battery.voltage",
    "input_power_w": "input.realpower",
    "apparent_power_va": "ups.power",
    "capacity_w": "ups.realpower.nominal",
    "voltage_v": "input.voltage",
    "current_a": "input.current",
    "frequency_hz": "input.frequency",
    "temperature_c": "ups.temperature",
}


# Per-phase metric family → leaf of NUT's input.L<n>.<leaf> (breaker state has no NUT variable).
_PHASE_VARS = {PHASE_CURRENT.name: "current", PHASE_POWER.name: "realpower"}


def _device_var(out: dict[str, str], r: Reading, device_type: str) -> None:
    if (phased := phase_of_metric(r.metric)) is not None:
        family, phase = phased
        if family.name in _PHASE_VARS:
            out[f"input.L{phase}.{_PHASE_VARS[family.name]}"] = _fmt(r.value)
    elif r.metric == ("output_power_w" if device_type == "ups" else "power_w"):
        out["ups.realpower"] = _fmt(r.value)
    elif r.metric in _SCALE_PCT:
        out[_SCALE_PCT[r.metric]] = _fmt(r.value * 100.0)
    elif r.metric in _PLAIN and not r.tags:
        out[_PLAIN[r.metric]] = _fmt(r.value)
    elif r.metric == "ats_source_index":
        out["input.source"] = _fmt(r.value + 1.0)
    elif r.metric in {"on_battery", "low_battery"}:
        out[f"_{r.metric}"] = "1" if r.value >= 0.5 else "0"


def _outlet_var(out: dict[str, str], n: int, r: Reading) -> None:
    if r.metric == "outlet_on":
        out[f"outlet.{n}.status"] = "on" if r.value >= 0.5 else "off"
        out[f"outlet.{n}.switchable"] = "yes"
    elif r.metric == "power_w":
        out[f"outlet.{n}.realpower"] = _fmt(r.value)
    elif r.metric == "current_a":
        out[f"outlet.{n}.current"] = _fmt(r.value)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class NutSocketEmulator:
    """Serves one NUT device on upsd's driver socket, with state from ``driver``.

    Args:
        driver: Where state comes from and commands go (the twin, or any Driver).
        spec: Which device and outlets to expose.
        socket_path: ``$NUT_STATEPATH/<driver>-<ups_name>``.
        refresh_s: How often state is re-read and changes pushed to upsd.
    """

    def __init__(self, driver: Driver, spec: NutDeviceSpec, socket_path: str, refresh_s: float = 0.2) -> None:
        self.driver = driver
        self.spec = spec
        self.socket_path = socket_path
        self.refresh_s = refresh_s
        self.vars: dict[str, str] = {}
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None
        self._refresher: asyncio.Task[None] | None = None

    def commands(self) -> list[str]:
        """Instant commands this device offers."""
        cmds = ["load.off", "load.on", "shutdown.return"] if self.spec.outlet_ids else []
        for n in range(1, len(self.spec.outlet_ids) + 1):
            cmds += [f"outlet.{n}.load.off", f"outlet.{n}.load.on", f"outlet.{n}.load.cycle"]
        return cmds

    async def start(self) -> None:
        """Read state once and listen on the socket."""
        await self._refresh()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        self._server = await asyncio.start_unix_server(self._handle, self.socket_path)
        os.chmod(self.socket_path, 0o660)
        self._refresher = asyncio.create_task(self._refresh_loop())

    async def stop(self) -> None:
        """Stop serving and remove the socket."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for w in list(self._writers):
            w.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self._refresh()
            except DriverError as err:
                logger.debug("NUT emulator %s: state read failed: %s", self.spec.ups_name, err)

    async def _refresh(self) -> None:
        ids = (self.spec.device_id, *self.spec.outlet_ids)
        new = readings_to_vars(self.spec, await read_devices(self.driver, ids))
        changed = {k: v for k, v in new.items() if self.vars.get(k) != v}
        self.vars.update(new)
        for w in list(self._writers):
            for k, v in changed.items():
                w.write(f"SETINFO {k} {_quote(v)}\n".encode())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while line := await reader.readline():
                answer = await self._answer(shlex.split(line.decode(errors="replace")))
                if answer:
                    writer.write(answer.encode())
                    await writer.drain()
        except (OSError, ValueError) as err:
            logger.debug("NUT emulator %s: upsd connection ended: %s", self.spec.ups_name, err)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, args: list[str]) -> str:
        if not args:
            return ""
        tracking = None
        if len(args) >= 3 and args[-2] == "TRACKING":
            tracking, args = args[-1], args[:-2]
        verb = args[0]
        if verb == "DUMPALL":
            lines = [f"SETINFO {k} {_quote(v)}" for k, v in self.vars.items()]
            lines += [f"ADDCMD {c}" for c in self.commands()] + ["DATAOK", "DUMPDONE"]
            return "\n".join(lines) + "\n"
        if verb == "PING":
            return "PONG\n"
        if verb == "GETPID":
            return f"PID {os.getpid()}\n"
        if verb == "LOGOUT":
            return "OK Goodbye\n"
        if verb == "INSTCMD" and len(args) >= 2:
            status = await self._instcmd(args[1])
        elif verb == "SET":
            status = _INVALID  # no writable variables: outlets are switched by instant commands
        else:
            return ""
        return f"TRACKING {tracking} {status}\n" if tracking is not None else ""

    async def _instcmd(self, cmd: str) -> int:
        actions = self._actions_for(cmd)
        if actions is None:
            return _INVALID
        try:
            results = [await self.driver.apply(a) for a in actions]
            await self._refresh()
        except DriverError as err:
            logger.warning("NUT emulator %s: %s failed: %s", self.spec.ups_name, cmd, err)
            return _FAILED
        return _HANDLED if all(r.ok for r in results) else _FAILED

    def _actions_for(self, cmd: str) -> list[Action] | None:
        parts = cmd.split(".")
        kinds = {"off": ActionKind.OUTLET_OFF, "on": ActionKind.OUTLET_ON, "cycle": ActionKind.OUTLET_CYCLE}
        reason = f"NUT INSTCMD {cmd}"
        if len(parts) == 4 and parts[0] == "outlet" and parts[2] == "load" and parts[3] in kinds:
            n = int(parts[1]) if parts[1].isdigit() else 0
            if not 1 <= n <= len(self.spec.outlet_ids):
                return None
            return [Action(kind=kinds[parts[3]], target_id=self.spec.outlet_ids[n - 1], reason=reason)]
        if cmd in {"load.off", "load.on", "shutdown.return"} and self.spec.outlet_ids:
            kind = {"load.off": ActionKind.OUTLET_OFF, "load.on": ActionKind.OUTLET_ON}.get(
                cmd, ActionKind.OUTLET_CYCLE
            )
            return [Action(kind=kind, target_id=oid, reason=reason) for oid in self.spec.outlet_ids]
        return None
