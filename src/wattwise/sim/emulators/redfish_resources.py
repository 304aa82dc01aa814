"""Redfish resource bodies of the emulated service, rendered from the driver's latest values.

Shapes follow the DMTF mockups (public-rackmount1, public-pdu, public-cooling-unit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from wattwise.sim.emulators.http import HttpResponse

V1 = "/redfish/v1"
Json = dict[str, Any]
Values = dict[tuple[str, str], float]


@dataclass(frozen=True)
class RedfishDeviceSpec:
    """What one emulated Redfish service exposes.

    Attributes:
        device_id: Site id of the chassis / PDU / CDU.
        kind: ``server`` (chassis, PSUs, power limit), ``pdu`` (rack PDU, outlets),
            ``shelf`` (power shelf: PSUs, no limit) or ``cdu`` (cooling unit).
        psu_ids: Site ids of PSUs (Redfish ``PSU1``..).
        outlet_ids: Site ids of outlets (Redfish ``OA1``..).
        limit_min_w: Smallest accepted power limit.
        limit_max_w: Largest accepted power limit.
        username: Account name.
        password: Its password.
        session_ttl_s: Idle lifetime of a session token.
        expand_query: Serve the DMTF ``$expand`` query (advertised in the service root).
    """

    device_id: str
    kind: Literal["server", "pdu", "shelf", "cdu"] = "server"
    psu_ids: Sequence[str] = ()
    outlet_ids: Sequence[str] = ()
    limit_min_w: float = 0.0
    limit_max_w: float = 100_000.0
    username: str = "admin"
    password: str = "secret"
    session_ttl_s: float = 600.0
    expand_query: bool = True

    def psu_path(self, n: int) -> str:
        """``@odata.id`` of PSU ``n`` (1-based)."""
        return f"{V1}/Chassis/1/PowerSubsystem/PowerSupplies/PSU{n}"

    def outlet_path(self, n: int) -> str:
        """``@odata.id`` of outlet ``n`` (1-based)."""
        return f"{V1}/PowerEquipment/RackPDUs/1/Outlets/O{n}"

    def id_map(self) -> dict[str, str]:
        """``@odata.id`` → site id, for :class:`wattwise.drivers.redfish.RedfishDriver`."""
        out = {self.psu_path(n): pid for n, pid in enumerate(self.psu_ids, start=1)}
        out.update({self.outlet_path(n): oid for n, oid in enumerate(self.outlet_ids, start=1)})
        return out


def ref(path: str) -> Json:
    """A link."""
    return {"@odata.id": path}


def error_response(status: int, message: str) -> HttpResponse:
    """A Redfish error body with one extended-info message."""
    return HttpResponse(
        status,
        {
            "error": {
                "code": "Base.1.0.GeneralError",
                "message": message,
                "@Message.ExtendedInfo": [{"Message": message}],
            }
        },
    )


def _coll(path: str, name: str, items: Sequence[str]) -> Json:
    return {
        "@odata.id": path,
        "@odata.type": f"#{name}Collection.{name}Collection",
        "Name": name,
        "Members@odata.count": len(items),
        "Members": [ref(i) for i in items],
    }


def _res(path: str, odata_type: str, rid: str, **props: Any) -> Json:
    return {"@odata.id": path, "@odata.type": odata_type, "Id": rid, "Name": rid, **props}


def _x(value: float | None) -> Json | None:
    return None if value is None else {"Reading": value}


def _status(available: float | None) -> Json:
    if available is None or available >= 0.5:
        return {"State": "Enabled", "Health": "OK"}
    return {"State": "UnavailableOffline", "Health": "Critical"}


def _drop_none(body: Json) -> Json:
    return {k: v for k, v in body.items() if v is not None}


def render(spec: RedfishDeviceSpec, values: Values, path: str) -> Json | None:
    """The body of ``path``, or ``None`` when the service has no such resource."""
    for renderer in (_chassis, _psus, _controls, _pdu, _cdu):
        body = renderer(spec, values, path)
        if body is not None:
            return _drop_none(body)
    return None


def _chassis(spec: RedfishDeviceSpec, v: Values, path: str) -> Json | None:
    if spec.kind not in ("server", "shelf"):
        return None
    d = spec.device_id
    c = f"{V1}/Chassis/1"
    if path == f"{V1}/Chassis":
        return _coll(path, "Chassis", [c])
    if path == c:
        return _res(
            c,
            "#Chassis.v1_25_0.Chassis",
            "1",
            ChassisType="RackMount" if spec.kind == "server" else "Shelf",
            Status=_status(v.get((d, "available"))),
            EnvironmentMetrics=ref(f"{c}/EnvironmentMetrics"),
            PowerSubsystem=ref(f"{c}/PowerSubsystem"),
            Controls=ref(f"{c}/Controls"),
        )
    if path == f"{c}/EnvironmentMetrics":
        return _res(
            path,
            "#EnvironmentMetrics.v1_3_0.EnvironmentMetrics",
            "EnvironmentMetrics",
            PowerWatts=_x(v.get((d, "power_w"))),
            TemperatureCelsius=_x(v.get((d, "inlet_temp_c"))),
        )
    if path == f"{c}/PowerSubsystem":
        return _res(
            path,
            "#PowerSubsystem.v1_1_0.PowerSubsystem",
            "PowerSubsystem",
            PowerSupplies=ref(f"{c}/PowerSubsystem/PowerSupplies"),
        )
    return None


def _psus(spec: RedfishDeviceSpec, v: Values, path: str) -> Json | None:
    base = f"{V1}/Chassis/1/PowerSubsystem/PowerSupplies"
    if spec.kind not in ("server", "shelf") or not path.startswith(base):
        return None
    if path == base:
        return _coll(path, "PowerSupply", [spec.psu_path(n) for n in range(1, len(spec.psu_ids) + 1)])
    for n, pid in enumerate(spec.psu_ids, start=1):
        p = spec.psu_path(n)
        if path == p:
            return _res(
                p,
                "#PowerSupply.v1_6_0.PowerSupply",
                f"PSU{n}",
                PowerCapacityWatts=v.get((pid, "capacity_w")),
                Status=_status(v.get((pid, "available"))),
                Metrics=ref(f"{p}/Metrics"),
            )
        if path == f"{p}/Metrics":
            return _res(
                path,
                "#PowerSupplyMetrics.v1_1_0.PowerSupplyMetrics",
                "Metrics",
                InputPowerWatts=_x(v.get((pid, "input_power_w"))),
                OutputPowerWatts=_x(v.get((pid, "output_power_w"))),
                InputVoltage=_x(v.get((pid, "voltage_v"))),
                InputCurrentAmps=_x(v.get((pid, "current_a"))),
                TemperatureCelsius=_x(v.get((pid, "temperature_c"))),
            )
    return None


def _controls(spec: RedfishDeviceSpec, v: Values, path: str) -> Json | None:
    base = f"{V1}/Chassis/1/Controls"
    if spec.kind not in ("server", "shelf") or not path.startswith(base):
        return None
    names = (["PowerLimit"] if spec.kind == "server" else []) + [
        f"PSU{n}SetPoint" for n in range(1, len(spec.psu_ids) + 1)
    ]
    if path == base:
        return _coll(path, "Control", [f"{base}/{n}" for n in names])
    if path == f"{base}/PowerLimit" and spec.kind == "server":
        cap = v.get((spec.device_id, "power_cap_w"), spec.limit_max_w)
        return _res(
            path,
            "#Control.v1_7_0.Control",
            "PowerLimit",
            ControlType="Power",
            ControlMode="Automatic",
            SetPoint=cap,
            SetPointUnits="W",
            AllowableMin=spec.limit_min_w,
            AllowableMax=spec.limit_max_w,
            Sensor={"Reading": v.get((spec.device_id, "power_w"))},
            RelatedItem=[ref(f"{V1}/Chassis/1")],
        )
    for n, pid in enumerate(spec.psu_ids, start=1):
        if path == f"{base}/PSU{n}SetPoint":
            return _res(
                path,
                "#Control.v1_7_0.Control",
                f"PSU{n}SetPoint",
                ControlType="Power",
                ControlMode="Manual",
                SetPoint=v.get((pid, "setpoint_w")),
                SetPointUnits="W",
                AllowableMin=0.0,
                AllowableMax=v.get((pid, "capacity_w")),
                RelatedItem=[ref(spec.psu_path(n))],
            )
    return None


def _pdu(spec: RedfishDeviceSpec, v: Values, path: str) -> Json | None:
    if spec.kind != "pdu" or not path.startswith(f"{V1}/PowerEquipment"):
        return None
    pdu = f"{V1}/PowerEquipment/RackPDUs/1"
    d = spec.device_id
    simple: dict[str, Callable[[], Json]] = {
        f"{V1}/PowerEquipment": lambda: _res(
            f"{V1}/PowerEquipment",
            "#PowerEquipment.v1_2_0.PowerEquipment",
            "PowerEquipment",
            RackPDUs=ref(f"{V1}/PowerEquipment/RackPDUs"),
        ),
        f"{V1}/PowerEquipment/RackPDUs": lambda: _coll(f"{V1}/PowerEquipment/RackPDUs", "PowerDistribution", [pdu]),
        pdu: lambda: _res(
            pdu,
            "#PowerDistribution.v1_6_0.PowerDistribution",
            "1",
            EquipmentType="RackPDU",
            Status=_status(v.get((d, "available"))),
            Metrics=ref(f"{pdu}/Metrics"),
            Outlets=ref(f"{pdu}/Outlets"),
        ),
        f"{pdu}/Metrics": lambda: _res(
            f"{pdu}/Metrics",
            "#PowerDistributionMetrics.v1_4_0.PowerDistributionMetrics",
            "Metrics",
            PowerWatts=_x(v.get((d, "power_w"))),
            EnergykWh=_x(None if (e := v.get((d, "energy_j"))) is None else e / 3.6e6),
        ),
        f"{pdu}/Outlets": lambda: _coll(
            f"{pdu}/Outlets", "Outlet", [spec.outlet_path(n) for n in range(1, len(spec.outlet_ids) + 1)]
        ),
    }
    if path in simple:
        return simple[path]()
    for n, oid in enumerate(spec.outlet_ids, start=1):
        p = spec.outlet_path(n)
        if path == p:
            on = v.get((oid, "outlet_on"), 1.0) >= 0.5
            return _res(
                p,
                "#Outlet.v1_4_4.Outlet",
                f"O{n}",
                PowerState="On" if on else "Off",
                PowerEnabled=True,
                PowerWatts=_x(v.get((oid, "power_w"))),
                CurrentAmps=_x(v.get((oid, "current_a"))),
                Voltage=_x(v.get((oid, "voltage_v"))),
                Actions={
                    "#Outlet.PowerControl": {
                        "target": f"{p}/Actions/Outlet.PowerControl",
                        "PowerState@Redfish.AllowableValues": ["On", "Off", "PowerCycle"],
                    }
                },
            )
    return None


def _cdu(spec: RedfishDeviceSpec, v: Values, path: str) -> Json | None:
    if spec.kind != "cdu" or not path.startswith(f"{V1}/ThermalEquipment"):
        return None
    d = spec.device_id
    cdu = f"{V1}/ThermalEquipment/CDUs/1"
    leaks = f"{cdu}/LeakDetection/LeakDetectors"
    bodies: dict[str, Callable[[], Json]] = {
        f"{V1}/ThermalEquipment": lambda: _res(
            f"{V1}/ThermalEquipment",
            "#ThermalEquipment.v1_1_0.ThermalEquipment",
            "ThermalEquipment",
            CDUs=ref(f"{V1}/ThermalEquipment/CDUs"),
        ),
        f"{V1}/ThermalEquipment/CDUs": lambda: _coll(f"{V1}/ThermalEquipment/CDUs", "CoolingUnit", [cdu]),
        cdu: lambda: _res(
            cdu,
            "#CoolingUnit.v1_5_0.CoolingUnit",
            "1",
            EquipmentType="CDU",
            Status=_status(v.get((d, "available"))),
            EnvironmentMetrics=ref(f"{cdu}/EnvironmentMetrics"),
            LeakDetection=ref(f"{cdu}/LeakDetection"),
        ),
        f"{cdu}/EnvironmentMetrics": lambda: _res(
            f"{cdu}/EnvironmentMetrics",
            "#EnvironmentMetrics.v1_5_0.EnvironmentMetrics",
            "EnvironmentMetrics",
            TemperatureCelsius=_x(v.get((d, "inlet_temp_c"))),
            PowerWatts=_x(v.get((d, "power_w"))),
        ),
        f"{cdu}/LeakDetection": lambda: _res(
            f"{cdu}/LeakDetection", "#LeakDetection.v1_1_0.LeakDetection", "LeakDetection", LeakDetectors=ref(leaks)
        ),
        leaks: lambda: _coll(leaks, "LeakDetector", [f"{leaks}/Main"]),
        f"{leaks}/Main": lambda: _res(
            f"{leaks}/Main",
            "#LeakDetector.v1_2_0.LeakDetector",
            "Main",
            DetectorState="Critical" if v.get((d, "leak_detected"), 0.0) >= 0.5 else "OK",
        ),
    }
    return bodies[path]() if path in bodies else None
