"""The endpoints file: shape, site checks, secrets by reference, and the drivers built from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattwise.cli.run_cmd import UNROUTED_SHEDS, unrouted_warning
from wattwise.drivers.endpoint_drivers import build_drivers
from wattwise.drivers.endpoint_rules import check_endpoints_text, load_endpoints
from wattwise.drivers.endpoints import EndpointsValidationError, scheme_of
from wattwise.drivers.kubernetes import KubernetesDriver
from wattwise.drivers.kubernetes_services import WorkloadRef
from wattwise.drivers.modbus import ModbusRackletDriver
from wattwise.drivers.nut import NutDriver
from wattwise.drivers.redfish import RedfishDriver
from wattwise.drivers.slurm import SlurmDriver
from wattwise.drivers.slurm_services import JobSelector
from wattwise.drivers.snmp import SnmpPduDriver
from wattwise.model.loader import load_site
from wattwise.model.problems import Problem, Severity
from wattwise.model.site import Site
from wattwise.model.values import Action, ActionKind, ActionResult, Reading

REPO = Path(__file__).resolve().parents[2]
FILE = "site-endpoints.yaml"
ENV = {"NUT_PW": "nut-secret-value", "BMC_PW": "bmc-secret-value"}


@pytest.fixture(scope="module")
def pod() -> Site:
    return load_site(REPO / "examples" / "racklet-pod.yaml")


VALID = """\
site: racklet-pod
poll_period_s: 4
endpoints:
  - url: nut://127.0.0.1:3493
    username: monitor
    password: {env: NUT_PW}
    devices:
      - {id: ups-h1-a, ups: ups1}
      - {id: ats-h1-a}
  - url: snmp://10.0.0.9:161
    device: pdu-r00001-a
  - url: redfish+https://10.0.1.1
    device: pdu-r00002-a
    username: admin
    password: {env: BMC_PW}
    tls: {verify: false}
    poll_period_s: 10
    outlets: {OA1: r00002-a-o1}
  - url: modbus://10.0.2.1:1502
    device: rl-r00001
"""


def _errors(text: str, site: Site, environ: dict[str, str] | None = None) -> list[Problem]:
    loaded, problems = check_endpoints_text(text, site, FILE, Path("."), ENV if environ is None else environ)
    errors = [p for p in problems if p.severity is Severity.ERROR]
    assert (loaded is None) == bool(errors)
    return errors


def _only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def test_valid_file_loads_with_unobserved_warnings(pod: Site) -> None:
    loaded, problems = check_endpoints_text(VALID, pod, FILE, Path("."), ENV)
    assert loaded is not None
    assert not [p for p in problems if p.severity is Severity.ERROR]
    # 1 of 2 UPS, 1 of 2 ATS, 6 of 8 PDUs, 48 servers, 3 of 4 racklets: unobserved, one warning per kind.
    warned = {p.message.split(" have no")[0] for p in problems if p.rule == "unobserved"}
    assert warned == {
        "1 of 2 ups device(s)",
        "1 of 2 ats device(s)",
        "6 of 8 pdu device(s)",
        "48 of 48 server device(s)",
        "3 of 4 racklet device(s)",
    }
    assert len(loaded.unobserved) == 1 + 1 + 6 + 48 + 3
    assert "ups-h1-b" in loaded.unobserved and "ups-h1-a" not in loaded.unobserved
    # Defaults: the SNMP PDU's outlets and the racklet's PSUs come from the site in order.
    pdu = next(p for p in pod.pdus if p.id == "pdu-r00001-a")
    assert all(loaded.served[o.id] == 1 for o in pdu.outlets)
    assert loaded.served["rl-r00001-rect1"] == 3


def test_unknown_device_names_file_line_and_path(pod: Site) -> None:
    text = VALID.replace("device: pdu-r00001-a", "device: pdu-nowhere")
    p = _only(_errors(text, pod))
    assert (p.rule, p.path, p.file, p.line) == ("unknown-device", "endpoints[1].device", FILE, 11)
    assert str(p).startswith(f"{FILE}:11: error: endpoints[1].device: [unknown-device] 'pdu-nowhere'")


def test_unknown_mapped_id_is_an_error(pod: Site) -> None:
    p = _only(_errors(VALID.replace("OA1: r00002-a-o1", "OA1: no-such-outlet"), pod))
    assert (p.rule, p.path, p.line) == ("unknown-device", "endpoints[2].outlets.OA1", 18)


def test_bad_url_scheme(pod: Site) -> None:
    p = _only(_errors(VALID.replace("url: modbus://10.0.2.1:1502", "url: http://10.0.2.1"), pod))
    assert (p.rule, p.path, p.line) == ("bad-scheme", "endpoints[3].url", 19)
    assert "modbus://" in p.message


def test_missing_env_secret_names_the_variable_not_a_value(pod: Site) -> None:
    p = _only(_errors(VALID, pod, {"BMC_PW": "x"}))
    assert (p.rule, p.path, p.line) == ("missing-secret", "endpoints[0].password", 6)
    assert "NUT_PW" in p.message


def test_missing_secret_file(pod: Site, tmp_path: Path) -> None:
    (tmp_path / "bmc.pw").write_text("from-file\n")
    text = VALID.replace("{env: BMC_PW}", "{file: bmc.pw}").replace("{env: NUT_PW}", "{file: gone.pw}")
    loaded, problems = check_endpoints_text(text, pod, str(tmp_path / FILE), tmp_path, {})
    p = _only([q for q in problems if q.severity is Severity.ERROR])
    assert loaded is None
    assert (p.rule, p.path, p.file) == ("missing-secret", "endpoints[0].password", str(tmp_path / FILE))
    assert "gone.pw" in p.message


def test_secret_reference_needs_exactly_one_source(pod: Site) -> None:
    p = _only(_errors(VALID.replace("{env: NUT_PW}", "{env: NUT_PW, file: x}"), pod))
    assert p.path == "endpoints[0].password" and p.line == 6


def test_inline_password_is_refused(pod: Site) -> None:
    p = _only(_errors(VALID.replace("{env: NUT_PW}", "hunter2"), pod))
    assert p.path == "endpoints[0].password" and p.rule == "wrong-type"


def test_unknown_key_and_wrong_kind_and_duplicate(pod: Site) -> None:
    text = VALID.replace("    device: rl-r00001\n", "    device: ups-h1-b\n    unit: 3\n")
    p = _only(_errors(text, pod))
    assert (p.rule, p.path) == ("unknown-key", "endpoints[3].unit")
    p = _only(_errors(VALID.replace("device: rl-r00001", "device: ups-h1-b"), pod))
    assert (p.rule, p.path) == ("wrong-kind", "endpoints[3].device")
    twice = VALID + "  - url: snmp://10.0.0.10\n    device: pdu-r00001-a\n"
    p = _only(_errors(twice, pod))
    assert (p.rule, p.path, p.line) == ("duplicate-device", "endpoints[4].device", 22)
    assert "endpoints[1]" in p.message and "3 more" in p.message  # the PDU's 3 default outlets, once


def test_wrong_site(pod: Site) -> None:
    p = _only(_errors(VALID.replace("site: racklet-pod", "site: other"), pod))
    assert (p.rule, p.path, p.line) == ("wrong-site", "site", 1)


def test_load_raises_with_every_problem(pod: Site, tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_text(VALID.replace("ats-h1-a", "ats-x").replace("device: rl-r00001", "device: rl-x"))
    with pytest.raises(EndpointsValidationError) as info:
        load_endpoints(path, pod, environ=ENV)
    assert {p.rule for p in info.value.problems if p.severity is Severity.ERROR} == {"unknown-device"}
    assert "2 problem(s)" in str(info.value) and f"{path}:9:" in str(info.value)
    assert "nut-secret-value" not in str(info.value)


def test_scheme_of() -> None:
    assert scheme_of("redfish+https://h") == "redfish"
    assert scheme_of("libvirt+qemu+ssh://h/system") == "libvirt"
    assert scheme_of("kubernetes+https://h:6443") == "kubernetes"
    assert scheme_of("libvirt+://h") == ""
    assert scheme_of("https://h") == ""
    assert scheme_of("nut") == ""


async def test_drivers_built_with_mappings_secrets_and_routes(pod: Site, tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_text(VALID)
    loaded = load_endpoints(path, pod, environ=ENV)
    built = build_drivers(loaded, pod, ENV)
    try:
        by_name = {d.name: (d, p) for d, p in built.polled}
        assert sorted(by_name) == [
            "modbus:rl-r00001",
            "nut:ats-h1-a",
            "nut:ups-h1-a",
            "redfish:pdu-r00002-a",
            "snmp:pdu-r00001-a",
        ]
        ups, period_s = by_name["nut:ups-h1-a"]
        assert isinstance(ups, NutDriver) and period_s == 4.0
        assert (ups.ups_name, ups.endpoint.username, ups.endpoint.password) == ("ups1", "monitor", "nut-secret-value")
        assert isinstance(by_name["nut:ats-h1-a"][0], NutDriver) and by_name["nut:ats-h1-a"][0].ups_name == "ats-h1-a"
        bmc, period_s = by_name["redfish:pdu-r00002-a"]
        assert isinstance(bmc, RedfishDriver) and period_s == 10.0
        assert bmc.endpoint.base_url == "https://10.0.1.1" and not bmc.endpoint.verify_tls
        assert bmc.endpoint.password == "bmc-secret-value" and bmc.id_map == {"OA1": "r00002-a-o1"}
        pdu = by_name["snmp:pdu-r00001-a"][0]
        assert isinstance(pdu, SnmpPduDriver) and pdu.target.community == "public" and pdu.target.port == 161
        assert pdu.outlet_ids[1] == "r00001-a-o1"
        racklet = by_name["modbus:rl-r00001"][0]
        assert isinstance(racklet, ModbusRackletDriver) and racklet.url == "modbus://10.0.2.1:1502"
        assert tuple(racklet.ids.psu_ids) == (
            "rl-r00001-rect1",
            "rl-r00001-rect2",
            "rl-r00001-rect3",
            "rl-r00001-rect4",
        )
        outlet_off = Action(kind=ActionKind.OUTLET_OFF, target_id="r00001-a-o2", value=None)
        assert built.route(outlet_off) is pdu
        setpoint = Action(kind=ActionKind.PSU_SETPOINT, target_id="rl-r00001-rect2", value=500.0)
        assert built.route(setpoint) is racklet
        assert built.route(Action(kind=ActionKind.OUTLET_ON, target_id="r00002-a-o1")) is bmc
        shed = Action(kind=ActionKind.SERVICE_SHED, target_id="svc-0001", value=None)
        assert built.route(shed) is None  # no orchestrator named: nothing can shed a service
    finally:
        await built.close()


async def test_orchestrators_are_built_from_the_file(pod: Site) -> None:
    text = (
        "site: racklet-pod\nendpoints:\n"
        "  - url: kubernetes+https://10.0.0.1:6443\n    cluster: k1\n    token: {env: K8S}\n"
        "    tls: {ca_file: null}\n    nodes: {node-a: r00001-s1}\n"
        "  - url: slurm://local\n    cluster: hpc\n    nodes: {n01: r00001-s2}\n"
        "  - url: libvirt+test:///default\n    host: r00001-s3\n    domains: {vm1: wl-000000}\n"
    )
    env = {"K8S": "tok"}
    loaded, problems = check_endpoints_text(text, pod, FILE, Path("."), env)
    assert loaded is not None, [str(p) for p in problems]
    built = build_drivers(loaded, pod, env)
    try:
        assert [d.name for d in built.drivers] == ["kubernetes:k1", "slurm:hpc", "libvirt:r00001-s3"]
        cordon = Action(kind=ActionKind.NODE_CORDON, target_id="r00001-s1", value=None)
        assert built.route(cordon) is built.drivers[0]
    finally:
        await built.close()


EXAMPLE_ENV = {
    "WATTWISE_NUT_PASSWORD": "a",
    "WATTWISE_SNMP_COMMUNITY": "b",
    "WATTWISE_BMC_PASSWORD": "c",
    "WATTWISE_K8S_TOKEN": "d",
}


def test_shipped_example_covers_its_site() -> None:
    site = load_site(REPO / "examples" / "single-rack.yaml")
    loaded = load_endpoints(REPO / "examples" / "endpoints" / "single-rack.yaml", site, environ=EXAMPLE_ENV)
    assert loaded.unobserved == () and loaded.problems == ()
    psus = {p.id for s in site.servers for p in s.psus}
    outlets = {o.id for p in site.pdus for o in p.outlets}
    assert psus | outlets <= set(loaded.served)
    with pytest.raises(EndpointsValidationError, match="WATTWISE_K8S_TOKEN"):
        load_endpoints(REPO / "examples" / "endpoints" / "single-rack.yaml", site, environ={})


async def test_shipped_example_maps_every_service() -> None:
    site = load_site(REPO / "examples" / "single-rack.yaml")
    loaded = load_endpoints(REPO / "examples" / "endpoints" / "single-rack.yaml", site, environ=EXAMPLE_ENV)
    built = build_drivers(loaded, site, EXAMPLE_ENV)
    try:
        assert built.can_shed() and built.unrouted_services == ()
        assert unrouted_warning(built) == ""
        k8s = built.services["svc-0000"]
        assert isinstance(k8s, KubernetesDriver) and k8s.name == "kubernetes:rack-k8s"
        assert k8s.services.services["svc-0000"] == WorkloadRef("statefulset", "payments", "ledger-db")
        throttle = Action(kind=ActionKind.THROTTLE, target_id="svc-0002", value=0.5)
        assert built.route(throttle) is k8s
    finally:
        await built.close()


async def test_can_shed_only_with_a_driver_for_service_actions(pod: Site, tmp_path: Path) -> None:
    path = tmp_path / FILE
    path.write_text(VALID)
    built = build_drivers(load_endpoints(path, pod, environ=ENV), pod, ENV)
    try:
        assert not built.can_shed()  # NUT, SNMP, Redfish, Modbus: none sheds a service
        orchestrator = _Orchestrator()
        built.polled.append((orchestrator, 5.0))
        assert not built.can_shed()  # it could, but no service is mapped to it
        built.services["svc-0001"] = orchestrator
        assert built.can_shed()
        assert built.route(Action(kind=ActionKind.SERVICE_SHED, target_id="svc-0001")) is orchestrator
        assert built.route(Action(kind=ActionKind.SERVICE_SHED, target_id="svc-0002")) is None  # unmapped
    finally:
        await built.close()


class _Orchestrator:
    """Stands in for a driver that sheds and restores services."""

    name = "orchestrator"

    def supports(self, kind: ActionKind) -> bool:
        return kind in (ActionKind.SERVICE_SHED, ActionKind.SERVICE_RESTORE)

    async def read(self) -> list[Reading]:
        return []

    async def apply(self, action: Action) -> ActionResult:
        return ActionResult(command_id=action.command_id, ok=True)

    async def close(self) -> None:
        return None


SERVICES = """\
site: racklet-pod
endpoints:
  - url: slurm://local
    cluster: hpc
    services:
      svc-0006: {partition: batch}
      svc-0007: {account: render, qos: low, shed: requeue_hold}
  - url: kubernetes+https://10.0.0.1:6443
    cluster: k1
    services:
      svc-0001: {deployment: shop/web}
      svc-0000: {statefulset: db/ledger}
"""


async def test_services_are_routed_to_the_endpoint_that_maps_them(pod: Site) -> None:
    loaded, problems = check_endpoints_text(SERVICES, pod, FILE, Path("."), ENV)
    assert loaded is not None, [str(p) for p in problems]
    assert loaded.services == {"svc-0006": 0, "svc-0007": 0, "svc-0001": 1, "svc-0000": 1}
    built = build_drivers(loaded, pod, ENV)
    try:
        slurm, k8s = built.drivers
        assert isinstance(slurm, SlurmDriver) and isinstance(k8s, KubernetesDriver)
        assert slurm.services == {
            "svc-0006": JobSelector(partition="batch"),
            "svc-0007": JobSelector(account="render", qos="low", shed="requeue_hold"),
        }
        assert k8s.services.services["svc-0001"] == WorkloadRef("deployment", "shop", "web")
        for kind in (ActionKind.SERVICE_SHED, ActionKind.SERVICE_RESTORE, ActionKind.THROTTLE):
            assert built.route(Action(kind=kind, target_id="svc-0006", value=0.5)) is slurm
            assert built.route(Action(kind=kind, target_id="svc-0001", value=0.5)) is k8s
            assert built.route(Action(kind=kind, target_id="svc-0002", value=0.5)) is None  # mapped by none
        assert built.can_shed()
        assert built.unrouted_services == ("svc-0002", "svc-0003", "svc-0004", "svc-0005") + tuple(
            f"svc-{n:04d}" for n in range(8, 12)
        )
        warning = unrouted_warning(built)
        assert warning.startswith("warning: 8 of 12 services are mapped by no endpoint")
        assert warning.endswith("svc-0002, svc-0003, svc-0004, svc-0005, svc-0008, svc-0009, svc-0010, svc-0011")
    finally:
        await built.close()


async def test_no_service_mapping_keeps_the_armed_warning(pod: Site) -> None:
    loaded, _ = check_endpoints_text(VALID, pod, FILE, Path("."), ENV)
    assert loaded is not None
    built = build_drivers(loaded, pod, ENV)
    try:
        assert unrouted_warning(built) == UNROUTED_SHEDS
    finally:
        await built.close()


@pytest.mark.parametrize(
    ("mapping", "path", "rule", "message"),
    [
        ("svc-9999: {partition: batch}", "endpoints[0].services.svc-9999", "unknown-service",
         "'svc-9999' is not a service of site racklet-pod"),
        ("r00001-s1: {partition: batch}", "endpoints[0].services.r00001-s1", "unknown-service",
         "'r00001-s1' is a server, not a service of site racklet-pod"),
        ("svc-0006: {partition: batch}", "endpoints[1].services.svc-0006", "duplicate-service",
         "'svc-0006' is already mapped by endpoints[0] (slurm)"),
        ("svc-0002: {shed: suspend}", "endpoints[0].services.svc-0002", "invalid-value",
         "a service needs at least one of partition, account, qos, name"),
        ("svc-0002: {partition: batch, shed: kill}", "endpoints[0].services.svc-0002.shed", "not-allowed",
         "(got 'kill')"),
    ],
)  # fmt: skip
def test_service_mapping_errors_name_file_endpoint_and_field(
    pod: Site, mapping: str, path: str, rule: str, message: str
) -> None:
    text = (
        "site: racklet-pod\nendpoints:\n"
        f"  - url: slurm://local\n    cluster: hpc\n    services:\n      svc-0005: {{name: web}}\n      {mapping}\n"
        "  - url: kubernetes+https://10.0.0.1:6443\n    cluster: k1\n    services:\n"
        "      svc-0006: {deployment: shop/web}\n"
    )
    problem = _only(_errors(text, pod))
    assert (problem.file, problem.path, problem.rule) == (FILE, path, rule), str(problem)
    assert message in problem.message
    assert problem.line is not None


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("{deployment: shop/web, statefulset: db/x}", "endpoints[0].services.svc-0001"),
        ("{deployment: web}", "endpoints[0].services.svc-0001.deployment"),
        ("{daemonset: kube-system/aws-node}", "endpoints[0].services.svc-0001.daemonset"),
    ],
)
def test_kubernetes_service_shapes(pod: Site, service: str, path: str) -> None:
    text = (
        "site: racklet-pod\nendpoints:\n  - url: kubernetes+https://10.0.0.1:6443\n    cluster: k1\n"
        f"    services:\n      svc-0001: {service}\n"
    )
    problem = _only(_errors(text, pod))
    assert problem.path == path and problem.file == FILE, str(problem)
