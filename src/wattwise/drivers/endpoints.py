"""The endpoints file: where each site device is reachable, and how (``wattwise run --endpoints``).

A site file says what the equipment is; an endpoints file says how to talk to it. Each entry
names a URL in the ``wattwise probe`` schemes (``nut://``, ``snmp://``, ``redfish+https://``,
``redfish+http://``, ``modbus://``; orchestrators ``kubernetes+https://``, ``slurm://``,
``libvirt+<libvirt URI>``), the site devices it serves, how the device's own names map to site
ids, its poll period and timeouts, TLS options, and credentials as *references* (an environment
variable or a file), never the secret itself. Orchestrator endpoints may also map site
services to what carries them (``services``: Slurm jobs by partition, account, QOS or name;
Kubernetes Deployments or StatefulSets), so that services can be shed, restored and throttled.
See ``docs/endpoints.md``.

Problems are reported like ``wattwise validate`` reports site problems: file, line, YAML path
and rule. Rules: the site-file rules for shape (``unknown-key``, ``missing-field``...), plus
``bad-scheme``, ``unknown-device``, ``wrong-kind``, ``duplicate-device``, ``unknown-service``,
``duplicate-service``, ``missing-secret``, ``wrong-site`` and the warning ``unobserved`` (site
devices no endpoint serves).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from wattwise.errors import ConfigError
from wattwise.model.loader import _line_index, _locate, _pydantic_problems, parse_text
from wattwise.model.problems import Problem, Severity

PROBE_SCHEMES = ("nut", "snmp", "redfish+https", "redfish+http", "modbus")
ORCHESTRATOR_SCHEMES = ("kubernetes+https", "kubernetes+http", "slurm", "libvirt+…")
PeriodS = Annotated[float, Field(gt=0.0, le=3600.0)]
TimeoutS = Annotated[float, Field(gt=0.0, le=600.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Frozen):
    """Where a credential is kept: an environment variable or a file (its first line).

    Attributes:
        env: Environment variable name.
        file: File path (relative paths are relative to the endpoints file).
    """

    env: str | None = Field(default=None, min_length=1)
    file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret is {env: NAME} or {file: PATH}, exactly one of them")
        return self

    def where(self) -> str:
        """Where the secret is looked up (safe to log)."""
        return f"env {self.env}" if self.env is not None else f"file {self.file}"

    def reveal(self, base_dir: Path, environ: Mapping[str, str]) -> str:
        """The secret's value.

        Raises:
            ConfigError: The variable is unset or the file unreadable (the message holds no secret).
        """
        if self.env is not None:
            value = environ.get(self.env)
            if value is None:
                raise ConfigError(f"environment variable {self.env} is not set")
            return value
        path = Path(self.file or "")
        path = path if path.is_absolute() else base_dir / path
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"secret file {path} unreadable: {type(err).__name__}") from err
        return lines[0] if lines else ""


class Tls(_Frozen):
    """TLS options (for NUT, their presence turns STARTTLS on).

    Attributes:
        verify: Verify the peer's certificate.
        ca_file: CA bundle, when not the system one.
    """

    verify: bool = True
    ca_file: str | None = None


class Verify(_Frozen):
    """TLS verification on or off (the Redfish driver takes no CA bundle of its own: use the system store)."""

    verify: bool = True


class _Endpoint(_Frozen):
    name: str | None = None
    url: str = Field(min_length=3)
    poll_period_s: PeriodS | None = None
    timeout_s: TimeoutS | None = None
    attempts: Annotated[int, Field(ge=1, le=10)] | None = None


class NutDevice(_Frozen):
    """One device on an upsd: its site id, its name there, its outlets by NUT number."""

    id: str
    ups: str | None = None
    outlets: dict[int, str] | None = None


class NutSpec(_Endpoint):
    """An upsd serving UPS, ATS or ePDU devices."""

    username: str | None = None
    password: SecretRef | None = None
    tls: Tls | None = None
    devices: tuple[NutDevice, ...] = Field(min_length=1)


class SnmpSpec(_Endpoint):
    """An APC PowerNet rack-PDU agent (v2c community, or v3 user with keys)."""

    device: str
    community: SecretRef | None = None
    v3_user: str = ""
    v3_auth_key: SecretRef | None = None
    v3_priv_key: SecretRef | None = None
    v3_context: str = ""
    outlets: dict[int, str] | None = None


class RedfishSpec(_Endpoint):
    """A Redfish service (BMC or rack PDU); ``psus``/``outlets`` map Redfish ``Id``/``@odata.id`` to site ids."""

    device: str
    username: str = ""
    password: SecretRef | None = None
    auth: Literal["session", "basic"] = "session"
    tls: Verify = Verify()
    psus: dict[str, str] = Field(default_factory=dict)
    outlets: dict[str, str] = Field(default_factory=dict)


class ModbusSpec(_Endpoint):
    """A racklet on Modbus TCP (wattwise register map: unit 1 power, unit 2 cooling)."""

    device: str
    psus: tuple[str, ...] | None = None
    cooling: bool = True


_K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$"
K8sRef = Annotated[str, Field(pattern=_K8S_NAME)]
Selector = Annotated[str, Field(min_length=1)]


class KubernetesService(_Frozen):
    """The workload that carries one site service: ``namespace/name`` of exactly one kind."""

    deployment: K8sRef | None = None
    statefulset: K8sRef | None = None

    @model_validator(mode="after")
    def _one(self) -> KubernetesService:
        if (self.deployment is None) == (self.statefulset is None):
            raise ValueError("a service is {deployment: NS/NAME} or {statefulset: NS/NAME}, exactly one of them")
        return self


class SlurmService(_Frozen):
    """The Slurm jobs of one site service (every field given must match) and how to shed them."""

    partition: Selector | None = None
    account: Selector | None = None
    qos: Selector | None = None
    name: Selector | None = None
    shed: Literal["suspend", "requeue_hold"] = "suspend"

    @model_validator(mode="after")
    def _some(self) -> SlurmService:
        if self.partition is None and self.account is None and self.qos is None and self.name is None:
            raise ValueError("a service needs at least one of partition, account, qos, name")
        return self


class KubernetesSpec(_Endpoint):
    """A Kubernetes API server; ``nodes`` maps node names to server ids, ``services`` service ids to workloads."""

    cluster: str
    token: SecretRef | None = None
    tls: Tls = Tls()
    nodes: dict[str, str] = Field(default_factory=dict)
    services: dict[str, KubernetesService] = Field(default_factory=dict)


class SlurmSpec(_Endpoint):
    """A Slurm cluster through its local commands; ``nodes`` maps node names, ``services`` service ids to jobs."""

    cluster: str
    conf_path: str | None = None
    bin_dir: str | None = None
    nodes: dict[str, str] = Field(default_factory=dict)
    services: dict[str, SlurmService] = Field(default_factory=dict)


class LibvirtSpec(_Endpoint):
    """One libvirt host (``libvirt+`` followed by its libvirt URI); ``domains`` maps names to workload ids."""

    host: str
    domains: dict[str, str] = Field(default_factory=dict)


def scheme_of(url: str) -> str:
    """The endpoint kind of a URL (``redfish``, ``libvirt``...), or ``""`` when unknown."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme.startswith("libvirt+") and len(scheme) > len("libvirt+"):
        return "libvirt"
    kinds = {"redfish+https": "redfish", "redfish+http": "redfish", "kubernetes+https": "kubernetes"}
    kinds["kubernetes+http"] = "kubernetes"
    return kinds.get(scheme, scheme if scheme in {"nut", "snmp", "modbus", "slurm"} else "")


def _tag(value: Any) -> str | None:
    url = value.get("url") if isinstance(value, dict) else getattr(value, "url", None)
    return (scheme_of(url) or None) if isinstance(url, str) else None


EndpointSpec = Annotated[
    Annotated[NutSpec, Tag("nut")]
    | Annotated[SnmpSpec, Tag("snmp")]
    | Annotated[RedfishSpec, Tag("redfish")]
    | Annotated[ModbusSpec, Tag("modbus")]
    | Annotated[KubernetesSpec, Tag("kubernetes")]
    | Annotated[SlurmSpec, Tag("slurm")]
    | Annotated[LibvirtSpec, Tag("libvirt")],
    Discriminator(
        _tag,
        custom_error_type="bad-scheme",
        custom_error_message="url must start with one of nut://, snmp://, redfish+https://, redfish+http://, "
        "modbus://, kubernetes+https://, kubernetes+http://, slurm://, libvirt+<uri>",
    ),
]
KINDS = ("nut", "snmp", "redfish", "modbus", "kubernetes", "slurm", "libvirt")


class EndpointsFile(_Frozen):
    """The whole file: the site it is for, defaults, and the endpoints.

    Attributes:
        site: Id of the site these endpoints serve (checked against the site file).
        poll_period_s: Default seconds between polls of one endpoint.
        timeout_s: Default time limit of one request, s.
        attempts: Default tries per request (retries live in the drivers).
        endpoints: The endpoints.
    """

    site: str
    poll_period_s: PeriodS = 5.0
    timeout_s: TimeoutS = 2.0
    attempts: Annotated[int, Field(ge=1, le=10)] = 2
    endpoints: tuple[EndpointSpec, ...] = ()


@dataclass(frozen=True)
class LoadedEndpoints:
    """A valid endpoints file with where it came from and what it leaves unobserved.

    Attributes:
        spec: The parsed file.
        base_dir: Folder relative secret files are read from.
        served: Site id → index of the endpoint serving it.
        unobserved: Site devices (UPS, ATS, PDUs, servers, racklets) no endpoint serves.
        problems: Warnings (errors raise instead).
        services: Site service id → index of the orchestrator endpoint that maps it.
    """

    spec: EndpointsFile
    base_dir: Path
    served: dict[str, int] = field(default_factory=dict)
    unobserved: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    services: dict[str, int] = field(default_factory=dict)


class EndpointsValidationError(ConfigError):
    """An endpoints file broke one or more rules; ``problems`` lists them all."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity is Severity.ERROR]
        super().__init__(f"{len(errors)} problem(s) in endpoints file:\n" + "\n".join(f"  {p}" for p in errors))


def _shape_problems(err: ValidationError) -> list[Problem]:
    out = []
    for p in _pydantic_problems(err):
        # The union's tag shows up in pydantic's location: drop it so paths read like the YAML.
        parts = [s for s in p.path.split(".") if s not in KINDS]
        path = ".".join(parts)
        message, rule = p.message, p.rule
        if message.startswith("url must start"):
            path, rule, message = f"{path}.url", "bad-scheme", message.split(" (got ")[0]
        out.append(Problem(path, rule, message))
    return out


def parse_endpoints(text: str, file: str = "<string>") -> tuple[EndpointsFile | None, list[Problem]]:
    """Parse and shape-check endpoints text (no site checks yet)."""
    data, problems = parse_text(text, file)
    if data is None:
        return None, problems
    try:
        return EndpointsFile.model_validate(data), problems
    except ValidationError as err:
        return None, problems + _shape_problems(err)


def located(problems: list[Problem], text: str, file: str) -> tuple[Problem, ...]:
    """Problems with file and line filled in."""
    lines = _line_index(text) if problems else {}
    return tuple(_locate(p, lines, file) for p in problems)


def reveal_all(spec: EndpointsFile, base_dir: Path, environ: Mapping[str, str]) -> list[Problem]:
    """A ``missing-secret`` problem for every secret reference that cannot be read."""
    problems = []
    for i, ep in enumerate(spec.endpoints):
        for name in type(ep).model_fields:
            ref = getattr(ep, name)
            if not isinstance(ref, SecretRef):
                continue
            try:
                ref.reveal(base_dir, environ)
            except ConfigError as err:
                problems.append(Problem(f"endpoints[{i}].{name}", "missing-secret", f"{ref.where()}: {err}"))
    return problems


def default_environ() -> Mapping[str, str]:
    """The process environment (the one place this module reads it)."""
    return os.environ
