"""An asyncio client for the NUT network protocol (RFC 9271), written for wattwise.

Speaks ``LIST UPS/VAR/RW/CMD``, ``GET VAR``, ``SET VAR``, ``INSTCMD`` (with ``SET TRACKING
ON`` so that a command's real outcome is known), ``USERNAME``/``PASSWORD`` login and
``STARTTLS``. Every failure leaves this module as a :class:`wattwise.errors.DriverError`.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import ssl
from dataclasses import dataclass

from wattwise.errors import DeviceAuthError, DeviceProtocolError, DeviceUnavailable, DriverError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 3493

# RFC 9271 §3.4 error names, sorted by who can fix them.
_AUTH_ERRORS = frozenset(
    {"ACCESS-DENIED", "USERNAME-REQUIRED", "PASSWORD-REQUIRED", "INVALID-PASSWORD", "INVALID-USERNAME"}
)
_TRANSIENT_ERRORS = frozenset({"DATA-STALE", "DRIVER-NOT-CONNECTED", "UNKNOWN-UPS"})


class NutCommandError(DeviceProtocolError):
    """upsd answered ``ERR <name>`` to a well-formed request (the device refused it).

    Attributes:
        code: The NUT error name (``CMD-NOT-SUPPORTED``, ``READONLY``...).
    """

    def __init__(self, code: str, *, device_id: str | None = None, url: str | None = None) -> None:
        super().__init__(f"upsd answered ERR {code}", device_id=device_id, url=url)
        self.code = code


@dataclass(frozen=True, slots=True)
class NutEndpoint:
    """Where and how to reach one upsd.

    Attributes:
        host: upsd host.
        port: upsd TCP port.
        username: upsd.users login, or ``None`` for read-only anonymous access.
        password: Its password.
        tls: Send ``STARTTLS`` before anything else.
        tls_verify: Verify upsd's certificate (on by default).
        ca_file: CA bundle for verification, when not the system one.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_verify: bool = True
    ca_file: str | None = None

    @property
    def url(self) -> str:
        """``nut://host:port`` (credentials never included)."""
        return f"nut://{self.host}:{self.port}"


def _error_for(code: str, device_id: str | None, url: str) -> DriverError:
    if code in _AUTH_ERRORS:
        return DeviceAuthError(f"upsd refused credentials: ERR {code}", device_id=device_id, url=url)
    if code in _TRANSIENT_ERRORS:
        return DeviceUnavailable(f"upsd: ERR {code}", device_id=device_id, url=url)
    return NutCommandError(code, device_id=device_id, url=url)


class NutClient:
    """One connection to upsd; requests are serialised (the protocol is strictly request/answer).

    Args:
        endpoint: The upsd to talk to.
        device_id: Device id for errors.
    """

    def __init__(self, endpoint: NutEndpoint, device_id: str | None = None) -> None:
        self.endpoint = endpoint
        self.device_id = device_id
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._tracking = False

    @property
    def connected(self) -> bool:
        """Whether a connection is open."""
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        """Open the connection, negotiate TLS when configured, and log in when configured.

        Raises:
            DeviceUnavailable: upsd cannot be reached.
            DeviceAuthError: upsd refused the login.
        """
        ep = self.endpoint
        try:
            self._reader, self._writer = await asyncio.open_connection(ep.host, ep.port)
        except OSError as err:
            raise DeviceUnavailable(f"cannot connect: {err}", device_id=self.device_id, url=ep.url) from err
        if ep.tls:
            await self._starttls()
        if ep.username is not None:
            await self._simple(f"USERNAME {ep.username}")
            await self._simple(f"PASSWORD {ep.password or ''}")

    async def _starttls(self) -> None:
        await self._simple("STARTTLS")
        ctx = ssl.create_default_context(cafile=self.endpoint.ca_file)
        if not self.endpoint.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        assert self._writer is not None
        try:
            await self._writer.start_tls(ctx, server_hostname=self.endpoint.host)
        except (OSError, ssl.SSLError) as err:
            raise DeviceUnavailable(f"TLS failed: {err}", device_id=self.device_id, url=self.endpoint.url) from err

    async def close(self) -> None:
        """Say LOGOUT (best effort) and close."""
        writer, self._writer, self._reader = self._writer, None, None
        self._tracking = False
        if writer is None:
            return
        try:
            writer.write(b"LOGOUT\n")
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), timeout=0.5)
        except (OSError, TimeoutError):
            logger.debug("NUT connection to %s closed uncleanly", self.endpoint.url)

    async def _send(self, line: str) -> None:
        if self._writer is None:
            await self.connect()
        assert self._writer is not None
        try:
            self._writer.write(line.encode() + b"\n")
            await self._writer.drain()
        except OSError as err:
            await self._drop()
            raise DeviceUnavailable(f"send failed: {err}", device_id=self.device_id, url=self.endpoint.url) from err

    async def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        self._tracking = False
        if writer is not None:
            writer.close()

    async def _line(self) -> str:
        assert self._reader is not None
        try:
            raw = await self._reader.readline()
        except (OSError, ValueError) as err:
            await self._drop()
            raise DeviceUnavailable(f"read failed: {err}", device_id=self.device_id, url=self.endpoint.url) from err
        if not raw.endswith(b"\n"):
            await self._drop()
            raise DeviceUnavailable("upsd closed the connection", device_id=self.device_id, url=self.endpoint.url)
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            await self._drop()
            raise DeviceProtocolError("answer is not UTF-8", device_id=self.device_id, url=self.endpoint.url) from err
        if line.startswith("ERR "):
            raise _error_for(line[4:].split(" ", 1)[0], self.device_id, self.endpoint.url)
        return line

    async def _simple(self, line: str) -> str:
        await self._send(line)
        answer = await self._line()
        if not answer.startswith("OK"):
            await self._drop()
            raise DeviceProtocolError(f"expected OK, got {answer[:80]!r}", device_id=self.device_id)
        return answer

    async def _list(self, query: str) -> list[list[str]]:
        async with self._lock:
            await self._send(f"LIST {query}")
            first = await self._line()
            if first != f"BEGIN LIST {query}":
                await self._drop()
                raise DeviceProtocolError(f"expected BEGIN LIST, got {first[:80]!r}", device_id=self.device_id)
            rows: list[list[str]] = []
            while (line := await self._line()) != f"END LIST {query}":
                rows.append(_split(line, self.device_id))
            return rows

    async def list_ups(self) -> dict[str, str]:
        """UPS names served by this upsd, with their descriptions."""
        return {r[1]: r[2] if len(r) > 2 else "" for r in await self._list("UPS") if len(r) >= 2}

    async def list_var(self, ups: str) -> dict[str, str]:
        """Every variable of ``ups`` as raw strings."""
        return {r[2]: r[3] if len(r) > 3 else "" for r in await self._list(f"VAR {ups}") if len(r) >= 3}

    async def list_rw(self, ups: str) -> dict[str, str]:
        """Writable variables of ``ups``."""
        return {r[2]: r[3] if len(r) > 3 else "" for r in await self._list(f"RW {ups}") if len(r) >= 3}

    async def list_cmd(self, ups: str) -> list[str]:
        """Instant commands ``ups`` supports."""
        return [r[2] for r in await self._list(f"CMD {ups}") if len(r) >= 3]

    async def get_var(self, ups: str, var: str) -> str:
        """One variable's raw value."""
        async with self._lock:
            await self._send(f"GET VAR {ups} {var}")
            parts = _split(await self._line(), self.device_id)
        if len(parts) < 4 or parts[0] != "VAR":
            raise DeviceProtocolError(f"bad GET VAR answer {parts!r}", device_id=self.device_id)
        return parts[3]

    async def set_var(self, ups: str, var: str, value: str, wait_s: float = 5.0) -> str:
        """``SET VAR``; returns the tracked outcome (``SUCCESS``) or raises.

        Raises:
            NutCommandError: upsd or the driver refused it (``READONLY``, ``INVALID-VALUE``...).
        """
        quoted = value.replace("\\", "\\\\").replace('"', '\\"')
        return await self._tracked(f'SET VAR {ups} {var} "{quoted}"', wait_s)

    async def instcmd(self, ups: str, cmd: str, param: str | None = None, wait_s: float = 5.0) -> str:
        """``INSTCMD``; returns the tracked outcome (``SUCCESS``) or raises.

        Raises:
            NutCommandError: The command is unknown, unsupported, or the driver failed it.
        """
        return await self._tracked(f"INSTCMD {ups} {cmd}" + (f" {param}" if param else ""), wait_s)

    async def _tracked(self, line: str, wait_s: float) -> str:
        async with self._lock:
            if not self._tracking:
                await self._simple("SET TRACKING ON")
                self._tracking = True
            answer = await self._simple(line)
            if not answer.startswith("OK TRACKING "):
                return "SUCCESS"
            tracking_id = answer.split()[2]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait_s
            while loop.time() < deadline:
                await self._send(f"GET TRACKING {tracking_id}")
                status = await self._line()
                if status != "PENDING":
                    return status
                await asyncio.sleep(0.02)
        raise DeviceUnavailable(f"{line.split()[0]} still pending after {wait_s} s", device_id=self.device_id)


def _split(line: str, device_id: str | None) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as err:
        raise DeviceProtocolError(f"unparsable line {line[:80]!r}", device_id=device_id) from err
