"""SlurmDriver against a real Slurm 22.05: munged + slurmctld + three slurmd on one host.

The cluster is started once for the module (about 1.5 s to idle nodes) from
tests/fixtures/slurm/slurm.conf.in, on free loopback ports, and stopped by PID.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, free_port, need_binary
from wattwise.drivers.base import Driver
from wattwise.drivers.slurm import SlurmDriver, node_available
from wattwise.drivers.slurm_services import JobSelector
from wattwise.errors import DeviceUnavailable
from wattwise.model.values import Action, ActionKind

pytestmark = [pytest.mark.peer("slurm"), pytest.mark.timeout(120)]

NODES = ("node1", "node2", "node3")


@dataclass
class Cluster:
    conf: Path
    env: dict[str, str]

    def run(self, *args: str) -> str:
        return subprocess.run(args, env=self.env, capture_output=True, text=True, check=True).stdout

    def states(self) -> dict[str, str]:
        out = self.run("sinfo", "-h", "-N", "-o", "%N %T")
        return dict(line.split() for line in out.strip().splitlines())

    def submit(self, name: str, node: str) -> str:
        out = self.run("sbatch", "--parsable", "-J", name, "-w", node, "-o", "/dev/null", "--wrap", "sleep 600")
        return out.strip().split(";")[0]

    def job(self, job_id: str) -> tuple[str, str]:
        out = self.run("squeue", "-h", "-j", job_id, "-o", "%T %N").split()
        return out[0], (out[1] if len(out) > 1 else "")

    def wait(self, cond: Any, what: str, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")


def _start(tmp: Path) -> tuple[list[subprocess.Popen[bytes]], Cluster]:
    munged, slurmctld, slurmd = need_binary("munged"), need_binary("slurmctld"), need_binary("slurmd")
    mungekey = need_binary("mungekey")
    for sub in ("mungekey", "munge", "state", "run", "log", *(f"spool/{n}" for n in NODES)):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    (tmp / "mungekey").chmod(0o700)
    (tmp / "munge").chmod(0o755)  # a 700 socket directory gives "Socket is inaccessible"
    key = tmp / "mungekey" / "munge.key"
    subprocess.run([mungekey, "--create", f"--keyfile={key}"], check=True)
    m = tmp / "munge"
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}  # logs go to $T/log
    procs = [
        subprocess.Popen(
            [
                munged,
                "-F",
                f"--key-file={key}",
                f"--socket={m}/munge.sock",
                f"--pid-file={m}/munged.pid",
                f"--log-file={m}/munged.log",
                f"--seed-file={m}/munged.seed",
            ]
        )  # fmt: skip
    ]
    node_lines = "\n".join(
        f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={free_port()} CPUs=2 RealMemory=1000"
        " State=UNKNOWN"
        for n in NODES
    )
    template = (REPO / "tests" / "fixtures" / "slurm" / "slurm.conf.in").read_text()
    conf = tmp / "slurm.conf"
    conf.write_text(template.format(T=tmp, ctld_port=free_port(), nodes=node_lines, node_list=",".join(NODES)))
    cluster = Cluster(conf, {**os.environ, "SLURM_CONF": str(conf)})
    cluster.wait(lambda: (m / "munge.sock").exists(), "munged socket", 5.0)
    procs.append(subprocess.Popen([slurmctld, "-D", "-f", str(conf)], env=cluster.env, **quiet))
    procs += [subprocess.Popen([slurmd, "-D", "-f", str(conf), "-N", n], env=cluster.env, **quiet) for n in NODES]
    return procs, cluster


def _idle(cluster: Cluster) -> bool:
    try:
        states = cluster.states()
    except subprocess.CalledProcessError:
        return False
    return len(states) == len(NODES) and set(states.values()) == {"idle"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = Path("/tmp") / f"wwslurm-{os.getpid()}"  # munge's socket path must stay short
    procs, c = _start(tmp)
    try:
        t0 = time.monotonic()
        c.wait(lambda: _idle(c), "three idle nodes", 30.0)
        print(f"slurm cluster idle after {time.monotonic() - t0:.2f} s")
        yield c
    finally:
        subprocess.run(["scancel", "-u", "root"], env=c.env, check=False, capture_output=True)
        deadline = time.monotonic() + 10
        while (
            time.monotonic() < deadline
            and subprocess.run(["squeue", "-h"], env=c.env, capture_output=True, text=True).stdout.strip()
        ):
            time.sleep(0.1)
        for p in reversed(procs):  # slurmd first, munged last
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def clean(cluster: Cluster) -> Iterator[Cluster]:
    """Each test starts with no jobs and all nodes idle, and leaves it so."""
    yield cluster
    subprocess.run(["scancel", "-u", "root"], env=cluster.env, check=False, capture_output=True)
    for n in NODES:
        subprocess.run(["scontrol", "update", f"nodename={n}", "state=resume"], env=cluster.env, capture_output=True)
    cluster.wait(lambda: _idle(cluster), "idle nodes after the test")


def act(kind: ActionKind, target: str, dest: str | None = None) -> Action:
    return Action(kind=kind, target_id=target, dest_id=dest, reason="feed A degraded", decision_id="t")


async def test_read_reports_nodes_and_jobs(clean: Cluster) -> None:
    driver = SlurmDriver("hpc", conf_path=str(clean.conf), node_ids={"node1": "srv-01"})
    assert isinstance(driver, Driver)
    job_id = clean.submit("train-a", "node2")
    clean.wait(lambda: clean.job(job_id)[0] == "RUNNING", "job running")
    readings = {(r.device_id, r.metric): r.value for r in await driver.read()}
    assert readings[("srv-01", "available")] == 1.0  # renamed to its site id
    assert readings[("node2", "cpu_frac")] == 0.5  # one of two CPUs allocated
    assert readings[("node3", "cpu_frac")] == 0.0
    assert readings[("train-a", "available")] == 1.0


async def test_cordon_keeps_jobs_and_resume_restores(clean: Cluster) -> None:
    driver = SlurmDriver("hpc", conf_path=str(clean.conf))
    job_id = clean.submit("keep", "node1")
    clean.wait(lambda: clean.job(job_id)[0] == "RUNNING", "job running")
    result = await driver.apply(act(ActionKind.NODE_CORDON, "node1"))
    assert result.ok, result.message
    assert clean.states()["node1"] in {"draining", "drng"}
    assert clean.job(job_id) == ("RUNNING", "node1")  # cordon does not move work
    again = await driver.apply(act(ActionKind.NODE_CORDON, "node1"))
    assert again.ok and again.message == "already drained"
    avail = {r.device_id: r.value for r in await driver.read() if r.metric == "available"}
    assert avail["node1"] == 0.0 and avail["node2"] == 1.0
    assert (await driver.apply(act(ActionKind.NODE_RESUME, "node1"))).ok
    assert "DRAIN" not in (await driver.nodes())["node1"]["state_flags"]
    assert (await driver.apply(act(ActionKind.NODE_RESUME, "node1"))).message == "already in service"


async def test_drain_moves_running_jobs_off_the_node(clean: Cluster) -> None:
    driver = SlurmDriver("hpc", conf_path=str(clean.conf))
    job_id = clean.submit("evacuee", "node3")
    clean.wait(lambda: clean.job(job_id)[0] == "RUNNING", "job running")
    # The job is pinned to node3 (sbatch -w): the driver must clear that to move it.
    t0 = time.monotonic()
    result = await driver.apply(act(ActionKind.NODE_DRAIN, "node3"))
    assert result.ok and job_id in result.message
    clean.wait(lambda: clean.job(job_id)[0] == "RUNNING", "job restarted")
    elapsed_s = time.monotonic() - t0
    state, node = clean.job(job_id)
    assert node in {"node1", "node2"}, f"job still on {node}"
    clean.wait(lambda: clean.states()["node3"] == "drained", "node3 drained (its job gone)", 5.0)
    print(f"drain: job {job_id} node3 -> {node} in {elapsed_s:.2f} s")


async def test_suspend_resume_and_migrate_a_job(clean: Cluster) -> None:
    driver = SlurmDriver("hpc", conf_path=str(clean.conf), node_ids={"node2": "srv-02"})
    job_id = clean.submit("stream-7", "node1")
    clean.wait(lambda: clean.job(job_id)[0] == "RUNNING", "job running")
    assert (await driver.apply(act(ActionKind.WORKLOAD_STOP, "stream-7"))).ok
    assert clean.job(job_id)[0] == "SUSPENDED"
    assert "already" in (await driver.apply(act(ActionKind.WORKLOAD_STOP, job_id))).message
    assert (await driver.apply(act(ActionKind.WORKLOAD_START, "stream-7"))).ok
    assert clean.job(job_id)[0] == "RUNNING"
    t0 = time.monotonic()
    moved = await driver.apply(act(ActionKind.WORKLOAD_MIGRATE, "stream-7", dest="srv-02"))
    assert moved.ok, moved.message
    clean.wait(lambda: clean.job(job_id) == ("RUNNING", "node2"), "job running on node2")
    print(f"migrate: job {job_id} node1 -> node2 in {time.monotonic() - t0:.2f} s")
    again = await driver.apply(act(ActionKind.WORKLOAD_MIGRATE, "stream-7", dest="srv-02"))
    assert again.ok and again.message == f"job {job_id} already on node2"


async def test_refusals_are_results_not_exceptions(clean: Cluster) -> None:
    driver = SlurmDriver("hpc", conf_path=str(clean.conf))
    missing = await driver.apply(act(ActionKind.NODE_DRAIN, "node9"))
    assert not missing.ok and "node9" in missing.message
    nojob = await driver.apply(act(ActionKind.WORKLOAD_STOP, "no-such-job"))
    assert not nojob.ok and "no-such-job" in nojob.message
    unsupported = await driver.apply(act(ActionKind.OUTLET_OFF, "node1"))
    assert not unsupported.ok and not driver.supports(ActionKind.OUTLET_OFF)


async def test_dead_controller_is_device_unavailable(tmp_path: Path) -> None:
    need_binary("sinfo")
    conf = tmp_path / "slurm.conf"
    template = (REPO / "tests" / "fixtures" / "slurm" / "slurm.conf.in").read_text()
    node = f"NodeName=n1 NodeAddr=127.0.0.1 Port={free_port()} CPUs=1 State=UNKNOWN"
    conf.write_text(template.format(T=tmp_path, ctld_port=free_port(), nodes=node, node_list="n1"))
    from wattwise.drivers.retry import RetryPolicy

    driver = SlurmDriver("hpc", conf_path=str(conf), retry=RetryPolicy(timeout_s=1.0, attempts=1))
    with pytest.raises(DeviceUnavailable):
        await driver.read()


def test_node_available_reads_state_and_flags() -> None:
    assert node_available({"state": "idle", "state_flags": []})
    assert node_available({"state": "mixed", "state_flags": []})
    assert not node_available({"state": "mixed", "state_flags": ["DRAIN"]})
    assert not node_available({"state": "down", "state_flags": []})
    assert not node_available({"state": "idle", "state_flags": ["NOT_RESPONDING"]})


def _batch(cluster: Cluster, name: str, node: str, *extra: str) -> str:
    out = cluster.run(
        "sbatch", "--parsable", "-p", "batch", "-J", name, "-w", node, "-o", "/dev/null", *extra, "--wrap", "sleep 600"
    )  # fmt: skip
    return out.strip().split(";")[0]


def _state_reason(cluster: Cluster, job_id: str) -> tuple[str, str]:
    state, reason = cluster.run("squeue", "-h", "-j", job_id, "-o", "%T %r").split(maxsplit=1)
    return state, reason.strip()


def _service(readings: list[Any], service_id: str) -> tuple[float, dict[str, str]]:
    r = next(r for r in readings if r.device_id == service_id and r.metric == "available")
    return r.value, dict(r.tags)


def _level(readings: list[Any], service_id: str) -> float:
    """The service's ``throttle_frac``: 0 while wattwise holds it shed (the restore is then planned)."""
    return float(next(r.value for r in readings if r.device_id == service_id and r.metric == "throttle_frac"))


async def test_shed_suspends_the_services_jobs_and_restore_resumes_them(clean: Cluster) -> None:
    driver = SlurmDriver("hpc", conf_path=str(clean.conf), services={"svc-batch": JobSelector(partition="batch")})
    etl1, etl2 = _batch(clean, "etl-1", "node1"), _batch(clean, "etl-2", "node2")
    later = _batch(clean, "etl-later", "node1", "--begin=now+1hour")
    manual = _batch(clean, "etl-manual", "node2", "--hold")  # held by a person: not wattwise's to release
    other = clean.submit("other", "node3")  # partition debug: not the service's
    clean.wait(lambda: all(clean.job(j)[0] == "RUNNING" for j in (etl1, etl2, other)), "jobs running")
    assert _service(await driver.read(), "svc-batch")[0] == 1.0

    shed = await driver.apply(act(ActionKind.SERVICE_SHED, "svc-batch"))
    assert shed.ok, shed.message
    assert f"suspend {etl1}" in shed.message and f"hold {later}" in shed.message
    assert clean.job(etl1)[0] == clean.job(etl2)[0] == "SUSPENDED"  # squeue state S
    assert _state_reason(clean, later) == ("PENDING", "JobHeldAdmin")
    assert clean.job(other)[0] == "RUNNING"
    value, tags = _service(await driver.read(), "svc-batch")
    assert value == 0.0 and tags["suspended"] == "2" and tags["held"] == "2"  # its own hold and the person's
    assert _level(await driver.read(), "svc-batch") == 0.0
    again = await driver.apply(act(ActionKind.SERVICE_SHED, "svc-batch"))
    assert again.ok and again.message.endswith("nothing to do")

    restore = await driver.apply(act(ActionKind.SERVICE_RESTORE, "svc-batch"))
    assert restore.ok, restore.message
    assert clean.job(etl1)[0] == clean.job(etl2)[0] == "RUNNING"
    state, reason = _state_reason(clean, later)
    assert state == "PENDING" and not reason.startswith("JobHeld")  # released, waits for its start time
    assert _state_reason(clean, manual)[1] == "JobHeldUser"  # not released
    assert _service(await driver.read(), "svc-batch")[0] == 1.0
    assert _level(await driver.read(), "svc-batch") == 1.0
    again = await driver.apply(act(ActionKind.SERVICE_RESTORE, "svc-batch"))
    assert again.ok and again.message.endswith("nothing to do")


async def test_requeue_hold_mode_frees_the_nodes_and_release_restarts(clean: Cluster) -> None:
    selector = JobSelector(partition="batch", name="render", shed="requeue_hold")
    driver = SlurmDriver("hpc", conf_path=str(clean.conf), services={"svc-render": selector})
    job_id = _batch(clean, "render", "node1")
    clean.wait(lambda: clean.job(job_id)[0] == "RUNNING", "job running")
    shed = await driver.apply(act(ActionKind.SERVICE_SHED, "svc-render"))
    assert shed.ok and f"requeuehold {job_id}" in shed.message, shed.message
    clean.wait(lambda: _state_reason(clean, job_id)[0] == "PENDING", "job requeued")
    assert _state_reason(clean, job_id)[1] == "job requeued in held state"
    assert _service(await driver.read(), "svc-render")[0] == 0.0
    assert (await driver.apply(act(ActionKind.SERVICE_RESTORE, "svc-render"))).ok
    clean.wait(lambda: clean.job(job_id)[0] == "RUNNING", "job running again", 30.0)


async def test_service_refusals(clean: Cluster) -> None:
    driver = SlurmDriver("hpc", conf_path=str(clean.conf), services={"svc-batch": JobSelector(partition="batch")})
    throttle = await driver.apply(Action(kind=ActionKind.THROTTLE, target_id="svc-batch", value=0.5))
    assert not throttle.ok and "cannot throttle service svc-batch" in throttle.message
    unmapped = await driver.apply(act(ActionKind.SERVICE_SHED, "svc-web"))
    assert not unmapped.ok and "not mapped" in unmapped.message
    assert driver.supports(ActionKind.SERVICE_SHED) and not driver.supports(ActionKind.THROTTLE)
    # No job of the service: it is not running, and shedding it has nothing to do.
    assert _service(await driver.read(), "svc-batch")[0] == 0.0
    assert (await driver.apply(act(ActionKind.SERVICE_SHED, "svc-batch"))).message.endswith("nothing to do")
