"""A stateful Redfish service backed by a wattwise Driver (usually the twin).

Resources are shaped as in the DMTF mockups (ServiceRoot, Chassis, PowerSubsystem,
PowerSupply/PowerSupplyMetrics, Control.v1_7, EnvironmentMetrics, PowerEquipment/RackPDUs,
Outlet.v1_4, ThermalEquipment/CDUs, LeakDetector) and rendered on each GET from the driver's
latest readings. ``#Outlet.PowerControl`` and PATCHes of Controls become ``driver.apply``, so
they change what the twin reports. Session (``X-Auth-Token``, with expiry) and basic auth.
GETs accept the DMTF ``$expand`` query (:mod:`wattwise.sim.emulators.redfish_query`) unless the
spec turns it off; other query parameters are ignored.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import ssl
import time
from collections.abc import Callable

from wattwise.drivers.base import Driver
from wattwise.model.values import Action, ActionKind
from wattwise.sim.emulators.cache import read_devices
from wattwise.sim.emulators.http import HttpRequest, HttpResponse, JsonHttpServer
from wattwise.sim.emulators.redfish_query import MAX_EXPAND_LEVELS, ExpandQueryError, expand, parse_expand
from wattwise.sim.emulators.redfish_resources import V1, Json, RedfishDeviceSpec, error_response, ref, render

logger = logging.getLogger(__name__)


class RedfishEmulator:
    """Serves one Redfish device on loopback, state from ``driver``.

    Args:
        driver: The backing Driver (the twin, or any Driver).
        spec: Resources to expose.
        port: TCP port (0 = any free one).
        now_s: Clock for session expiry.
        ssl_context: Serve HTTPS with this server context.
    """

    def __init__(
        self,
        driver: Driver,
        spec: RedfishDeviceSpec,
        port: int = 0,
        now_s: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.driver = driver
        self.spec = spec
        self.now_s = now_s
        self.scheme = "https" if ssl_context is not None else "http"
        self.server = JsonHttpServer(self.handle, port, ssl_context)
        self.sessions: dict[str, float] = {}
        self._ids = (spec.device_id, *spec.psu_ids, *spec.outlet_ids)
        self._values: dict[tuple[str, str], float] = {}

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:<port>``."""
        return f"{self.scheme}://127.0.0.1:{self.server.port}"

    async def start(self) -> None:
        """Listen."""
        await self.server.start()

    async def stop(self) -> None:
        """Stop listening."""
        await self.server.stop()

    def expire_sessions(self) -> None:
        """Forget every session token (a BMC reboot), so clients must log in again."""
        self.sessions.clear()

    def _authorised(self, request: HttpRequest) -> bool:
        token = request.headers.get("x-auth-token")
        if token is not None:
            seen = self.sessions.get(token)
            if seen is None or self.now_s() - seen > self.spec.session_ttl_s:
                self.sessions.pop(token, None)
                return False
            self.sessions[token] = self.now_s()
            return True
        auth = request.headers.get("authorization", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode(errors="replace").partition(":")
            return (user, password) == (self.spec.username, self.spec.password)
        return False

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Route one request."""
        path = request.path.rstrip("/") or "/"
        if path == V1 and request.method == "GET":
            return HttpResponse(200, self._root())
        if path == f"{V1}/SessionService/Sessions" and request.method == "POST":
            return self._login(request)
        if not self._authorised(request):
            return error_response(401, "authentication required")
        if request.method == "DELETE" and path.startswith(f"{V1}/SessionService/Sessions/"):
            self.sessions.pop(request.headers.get("x-auth-token", ""), None)
            return HttpResponse(204)
        self._values = {
            (r.device_id, r.metric): r.value for r in await read_devices(self.driver, self._ids) if not r.tags
        }
        if request.method == "GET":
            return self._get(path, request.query)
        try:
            payload = json.loads(request.body or b"{}")
        except ValueError:
            return error_response(400, "body is not JSON")
        if request.method == "PATCH":
            return await self._patch(path, payload)
        if request.method == "POST":
            return await self._post(path, payload)
        return error_response(405, f"{request.method} not allowed")

    def _login(self, request: HttpRequest) -> HttpResponse:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return error_response(400, "body is not JSON")
        if (body.get("UserName"), body.get("Password")) != (self.spec.username, self.spec.password):
            return error_response(401, "invalid credentials")
        token = secrets.token_hex(16)
        self.sessions[token] = self.now_s()
        location = f"{V1}/SessionService/Sessions/{token[:8]}"
        return HttpResponse(
            201,
            {"@odata.id": location, "Id": token[:8], "UserName": body["UserName"]},
            {"X-Auth-Token": token, "Location": location},
        )

    def _v(self, device_id: str, metric: str) -> float | None:
        return self._values.get((device_id, metric))

    def _root(self) -> Json:
        root: Json = {
            "@odata.id": f"{V1}/",
            "@odata.type": "#ServiceRoot.v1_20_0.ServiceRoot",
            "Id": "RootService",
            "Name": "wattwise twin",
            "RedfishVersion": "1.20.0",
            "SessionService": ref(f"{V1}/SessionService"),
            "Links": {"Sessions": ref(f"{V1}/SessionService/Sessions")},
        }
        if self.spec.expand_query:
            root["ProtocolFeaturesSupported"] = {
                "ExpandQuery": {
                    "ExpandAll": True,
                    "Levels": True,
                    "Links": True,
                    "NoLinks": True,
                    "MaxLevels": MAX_EXPAND_LEVELS,
                }
            }
        if self.spec.kind in ("server", "shelf"):
            root["Chassis"] = ref(f"{V1}/Chassis")
        if self.spec.kind == "pdu":
            root["PowerEquipment"] = ref(f"{V1}/PowerEquipment")
        if self.spec.kind == "cdu":
            root["ThermalEquipment"] = ref(f"{V1}/ThermalEquipment")
        return root

    def _resource(self, path: str) -> Json | None:
        return render(self.spec, self._values, path.rstrip("/") or "/")

    def _get(self, path: str, query: str) -> HttpResponse:
        body = self._resource(path)
        if body is None:
            return error_response(404, f"{path} not found")
        try:
            how = parse_expand(query)
        except ExpandQueryError as err:
            return error_response(400, str(err))
        if how is None:
            return HttpResponse(200, body)
        if not self.spec.expand_query:
            return error_response(501, "$expand is not supported")
        return HttpResponse(200, expand(body, self._resource, how))

    async def _apply(self, action: Action) -> HttpResponse:
        result = await self.driver.apply(action)
        if not result.ok:
            return error_response(400, result.message)
        return HttpResponse(204)

    async def _patch(self, path: str, payload: Json) -> HttpResponse:
        base = f"{V1}/Chassis/1/Controls/"
        if not path.startswith(base) or "SetPoint" not in payload:
            return error_response(405 if not path.startswith(base) else 400, f"cannot PATCH {path}")
        value = payload["SetPoint"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return error_response(400, "SetPoint must be a number")
        name = path[len(base) :]
        if name == "PowerLimit" and self.spec.kind == "server":
            if not self.spec.limit_min_w <= value <= self.spec.limit_max_w:
                return error_response(
                    400, f"SetPoint {value} outside [{self.spec.limit_min_w}, {self.spec.limit_max_w}]"
                )
            return await self._apply(
                Action(
                    kind=ActionKind.POWER_CAP, target_id=self.spec.device_id, value=float(value), reason="Redfish PATCH"
                )
            )
        n = _index(name, "PSU", "SetPoint")
        if n is None or not 1 <= n <= len(self.spec.psu_ids):
            return error_response(404, f"{path} not found")
        return await self._apply(
            Action(
                kind=ActionKind.PSU_SETPOINT,
                target_id=self.spec.psu_ids[n - 1],
                value=float(value),
                reason="Redfish PATCH",
            )
        )

    async def _post(self, path: str, payload: Json) -> HttpResponse:
        base = f"{V1}/PowerEquipment/RackPDUs/1/Outlets/"
        suffix = "/Actions/Outlet.PowerControl"
        if not (path.startswith(base) and path.endswith(suffix)):
            return error_response(404, f"no action at {path}")
        n = _index(path[len(base) : -len(suffix)], "O", "")
        if n is None or not 1 <= n <= len(self.spec.outlet_ids):
            return error_response(404, f"{path} not found")
        kinds = {"On": ActionKind.OUTLET_ON, "Off": ActionKind.OUTLET_OFF, "PowerCycle": ActionKind.OUTLET_CYCLE}
        kind = kinds.get(str(payload.get("PowerState")))
        if kind is None:
            return error_response(400, f"PowerState {payload.get('PowerState')!r} is not one of {sorted(kinds)}")
        return await self._apply(
            Action(kind=kind, target_id=self.spec.outlet_ids[n - 1], reason="Redfish PowerControl")
        )


def _index(name: str, prefix: str, suffix: str) -> int | None:
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    core = name[len(prefix) : len(name) - len(suffix)]
    return int(core) if core.isdigit() else None
