"""SlurmDriver: nodes and jobs of a Slurm cluster through its command-line tools.

Slurm 22.05 has no Python binding that works (pyslurm follows newer releases) and
``scontrol --json`` does not exist yet, so the driver reads ``sinfo --json`` and
``squeue --json`` (OpenAPI v0.0.38 shapes) and changes state with plain ``scontrol``.

Action mapping (``target_id`` is a node name, or a job given by id or name; a job is named
after the site workload it runs, ``sbatch -J <workload id>``):

=====================  ==================================================================
ActionKind             scontrol
=====================  ==================================================================
``NODE_CORDON``        ``update nodename=N state=drain reason=...`` (running jobs go on)
``NODE_DRAIN``         the same, then every job running on N is requeued elsewhere
``NODE_RESUME``        ``update nodename=N state=resume``
``WORKLOAD_STOP``      ``suspend J`` (memory kept, CPU stopped: power falls at once)
``WORKLOAD_START``     ``resume J``
``WORKLOAD_MIGRATE``   ``requeue J``, then ``update jobid=J nodelist=DEST starttime=now``
                       (no destination: ``nodelist= excnodelist=`` its old node)
``SERVICE_SHED``       ``suspend`` (or ``requeuehold``) the service's running jobs, ``hold``
                       its pending ones (``target_id`` is a site service id, mapped to jobs
                       by a :class:`~wattwise.drivers.slurm_services.JobSelector`)
``SERVICE_RESTORE``    ``resume``/``release`` the jobs wattwise shed
``THROTTLE``           refused for a service: Slurm cannot take a share of a running job
=====================  ==================================================================

Each action first reads the target's state, so repeating it is a no-op (idempotent).
A requeued job waits for ``cred_expire`` unless its start time is reset, and resetting
it only takes once the job has left ``COMPLETING``: the driver waits for ``PENDING``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from wattwise.drivers.retry import RetryPolicy, call_with_retries
from wattwise.drivers.slurm_services import JobSelector, plan, service_readings
from wattwise.errors import DeviceProtocolError, DeviceUnavailable
from wattwise.model.values import Action, ActionKind, ActionResult, Quality, Reading

logger = logging.getLogger(__name__)

_SUPPORTED = frozenset(
    {
        ActionKind.NODE_CORDON,
        ActionKind.NODE_DRAIN,
        ActionKind.NODE_RESUME,
        ActionKind.WORKLOAD_STOP,
        ActionKind.WORKLOAD_START,
        ActionKind.WORKLOAD_MIGRATE,
        ActionKind.SERVICE_SHED,
        ActionKind.SERVICE_RESTORE,
    }
)
_SERVICE_KINDS = frozenset({ActionKind.SERVICE_SHED, ActionKind.SERVICE_RESTORE, ActionKind.THROTTLE})
_DOWN_STATES = frozenset({"down", "drained", "fail", "failing", "future", "unknown", "error"})
_UNAVAILABLE_FLAGS = frozenset({"DRAIN", "FAIL", "NOT_RESPONDING", "POWERED_DOWN", "POWERING_DOWN"})
_TRANSIENT = ("unable to contact slurm controller", "connection refused", "socket timed out", "timed out")


class SlurmCommandError(Exception):
    """``scontrol`` refused a request (bad node, bad job, invalid state): not transient."""


class SlurmDriver:
    """A Slurm cluster as a wattwise Driver.

    Args:
        cluster_id: Site id of the cluster (device id of cluster-level readings).
        conf_path: ``slurm.conf`` to use (``SLURM_CONF``); ``None`` uses the system one.
        node_ids: Site id of each Slurm node name; names not listed keep their Slurm name.
        bin_dir: Directory of ``sinfo``/``squeue``/``scontrol``; ``None`` searches ``PATH``.
        retry: Timeout, attempts and back-off of each command.
        requeue_wait_s: How long a migration waits for the requeued job to become pending.
        now_s: Time source for reading timestamps.
        services: Site service id → the jobs that make it up (see :mod:`~wattwise.drivers.slurm_services`).
    """

    name = "slurm"

    def __init__(
        self,
        cluster_id: str,
        conf_path: str | None = None,
        node_ids: Mapping[str, str] | None = None,
        bin_dir: str | None = None,
        retry: RetryPolicy | None = None,
        requeue_wait_s: float = 5.0,
        now_s: Callable[[], float] = time.time,
        services: Mapping[str, JobSelector] | None = None,
    ) -> None:
        self.cluster_id = cluster_id
        self.services = dict(services or {})
        self.conf_path = conf_path
        self.node_ids = dict(node_ids or {})
        self._node_names = {v: k for k, v in self.node_ids.items()}
        self.bin_dir = bin_dir
        self.retry = retry or RetryPolicy(timeout_s=10.0, attempts=2)
        self.requeue_wait_s = requeue_wait_s
        self.now_s = now_s

    # ---- the one I/O boundary: run a tool, translate its failures ---------------------------
    async def _run_once(self, tool: str, args: tuple[str, ...]) -> str:
        exe = os.path.join(self.bin_dir, tool) if self.bin_dir else tool
        env = dict(os.environ)
        if self.conf_path:
            env["SLURM_CONF"] = self.conf_path
        try:
            proc = await asyncio.create_subprocess_exec(
                exe, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
            )
        except OSError as err:
            raise DeviceUnavailable(f"{tool} cannot run: {err}", device_id=self.cluster_id) from err
        try:
            out, err_out = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        text, err_text = out.decode(errors="replace"), err_out.decode(errors="replace").strip()
        if proc.returncode == 0:
            return text
        message = f"{tool} {' '.join(args)}: {err_text or text.strip()}"
        if any(t in message.lower() for t in _TRANSIENT):
            raise DeviceUnavailable(message, device_id=self.cluster_id)
        raise SlurmCommandError(message)

    async def _run(self, tool: str, *args: str) -> str:
        return await call_with_retries(
            lambda: self._run_once(tool, args), self.retry, what=f"{tool} {args[0] if args else ''}",
            device_id=self.cluster_id,
        )  # fmt: skip

    async def _json(self, tool: str) -> dict[str, Any]:
        try:
            data = json.loads(await self._run(tool, "--json"))
        except SlurmCommandError as err:
            raise DeviceProtocolError(str(err), device_id=self.cluster_id) from err
        except ValueError as err:
            raise DeviceProtocolError(f"{tool} --json: not JSON: {err}", device_id=self.cluster_id) from err
        if not isinstance(data, dict):
            raise DeviceProtocolError(f"{tool} --json: not an object", device_id=self.cluster_id)
        if data.get("errors"):
            # 22.05 exits 0 and lists errors when slurmctld or munge cannot be reached.
            raise DeviceUnavailable(f"{tool} --json: {data['errors']}", device_id=self.cluster_id)
        return data

    async def nodes(self) -> dict[str, dict[str, Any]]:
        """``sinfo --json`` nodes by Slurm name."""
        return {str(n["name"]): n for n in (await self._json("sinfo")).get("nodes", [])}

    async def jobs(self) -> list[dict[str, Any]]:
        """``squeue --json`` jobs."""
        return list((await self._json("squeue")).get("jobs", []))

    # ---- Driver protocol ----------------------------------------------------------------------
    def supports(self, kind: ActionKind) -> bool:
        """Node cordon/drain/resume, job stop/start/migrate, service shed/restore."""
        return kind in _SUPPORTED

    async def read(self) -> list[Reading]:
        """Per node ``available`` and ``cpu_frac`` (allocated CPUs); per job and mapped service ``available``."""
        t_s = self.now_s()
        readings: list[Reading] = []
        for name, node in (await self.nodes()).items():
            device_id = self.node_ids.get(name, name)
            readings.append(Reading(device_id, "available", float(node_available(node)), t_s, tags=_tags(node)))
            cpus = int(node.get("cpus") or 0)
            if cpus > 0:
                readings.append(Reading(device_id, "cpu_frac", min(1.0, int(node.get("alloc_cpus", 0)) / cpus), t_s))
        jobs = await self.jobs()
        for job in jobs:
            if job.get("name") in self.services:
                continue  # jobs named after a mapped service: the service's own reading covers them
            running = job.get("job_state") == "RUNNING"
            tags = (("job_id", str(job["job_id"])), ("nodes", str(job.get("nodes") or "")))
            # A job is named after the site workload it runs (sbatch -J <workload id>).
            readings.append(Reading(str(job["name"]), "available", float(running), t_s, Quality.GOOD, tags))
        readings += [r for sid, sel in self.services.items() for r in service_readings(sid, sel, jobs, t_s)]
        return readings

    async def apply(self, action: Action) -> ActionResult:
        """Apply one action; a refused request comes back as ``ok=False`` with scontrol's words."""
        if action.kind in _SERVICE_KINDS and action.target_id in self.services:
            return await self._service_action(action)
        if action.kind not in _SUPPORTED:
            return self._result(action, False, f"slurm cannot {action.kind}")
        if action.kind in _SERVICE_KINDS:
            why = f"service {action.target_id!r} is not mapped to jobs of {self.cluster_id}"
            return self._result(action, False, why)
        try:
            if action.kind in {ActionKind.NODE_CORDON, ActionKind.NODE_DRAIN, ActionKind.NODE_RESUME}:
                message = await self._node_action(action)
            else:
                message = await self._job_action(action)
        except SlurmCommandError as err:
            logger.warning("slurm refused %s on %s: %s", action.kind, action.target_id, err)
            return self._result(action, False, str(err))
        logger.info("slurm %s %s: %s", action.kind, action.target_id, message)
        return self._result(action, True, message)

    async def close(self) -> None:
        """Nothing to release: every call is a short-lived process."""

    # ---- nodes ----------------------------------------------------------------------------------
    async def _node_action(self, action: Action) -> str:
        name = self._node_names.get(action.target_id, action.target_id)
        node = (await self.nodes()).get(name)
        if node is None:
            raise SlurmCommandError(f"no node {name!r} in cluster {self.cluster_id}")
        drained = "DRAIN" in node.get("state_flags", [])
        if action.kind is ActionKind.NODE_RESUME:
            if not drained and node.get("state") not in _DOWN_STATES:
                return "already in service"
            await self._run("scontrol", "update", f"nodename={name}", "state=resume")
            return "resumed"
        if not drained:
            reason = (action.reason or "wattwise")[:100]
            await self._run("scontrol", "update", f"nodename={name}", "state=drain", f"reason=wattwise: {reason}")
        if action.kind is ActionKind.NODE_CORDON:
            return "drain set (running jobs continue)" if not drained else "already drained"
        moved = [str(j["job_id"]) for j in await self.jobs() if _on_node(j, name) and j.get("job_state") == "RUNNING"]
        for job_id in moved:
            await self._requeue(job_id, exclude=name, dest=None)
        return f"drained, requeued jobs {','.join(moved) or 'none'}"

    # ---- jobs -----------------------------------------------------------------------------------
    async def _find_job(self, target: str) -> dict[str, Any]:
        jobs = await self.jobs()
        live = [j for j in jobs if j.get("job_state") not in {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT"}]
        for job in live:
            if str(job["job_id"]) == target or job.get("name") == target:
                return job
        raise SlurmCommandError(f"no live job {target!r} in cluster {self.cluster_id}")

    async def _job_action(self, action: Action) -> str:
        job = await self._find_job(action.target_id)
        job_id, state = str(job["job_id"]), str(job.get("job_state"))
        if action.kind is ActionKind.WORKLOAD_STOP:
            if state == "SUSPENDED":
                return f"job {job_id} already suspended"
            await self._run("scontrol", "suspend", job_id)
            return f"job {job_id} suspended"
        if action.kind is ActionKind.WORKLOAD_START:
            if state != "SUSPENDED":
                return f"job {job_id} not suspended ({state.lower()})"
            await self._run("scontrol", "resume", job_id)
            return f"job {job_id} resumed"
        dest = self._node_names.get(action.dest_id, action.dest_id) if action.dest_id else None
        if dest is not None and job.get("nodes") == dest and state == "RUNNING":
            return f"job {job_id} already on {dest}"
        await self._requeue(job_id, exclude=None if dest else str(job.get("nodes") or ""), dest=dest)
        return f"job {job_id} requeued to {dest or 'any other node'}"

    async def _requeue(self, job_id: str, exclude: str | None, dest: str | None) -> None:
        """Requeue a job and let it start again at once, on ``dest`` or away from ``exclude``."""
        await self._run("scontrol", "requeue", job_id)
        deadline_s = time.monotonic() + self.requeue_wait_s
        while time.monotonic() < deadline_s:
            jobs = {str(j["job_id"]): j for j in await self.jobs()}
            if jobs.get(job_id, {}).get("job_state") == "PENDING":
                break
            await asyncio.sleep(0.05)
        # A job pinned to its old node (sbatch -w) could never leave it: an exclusion also
        # clears the pinning.
        placement = [f"nodelist={dest}"] if dest else ["nodelist=", f"excnodelist={exclude}"] if exclude else []
        await self._run("scontrol", "update", f"jobid={job_id}", "starttime=now", *placement)

    # ---- services ---------------------------------------------------------------------------------
    async def _service_action(self, action: Action) -> ActionResult:
        """Shed or restore a service's jobs; every step is skipped when already done (idempotent)."""
        sid, selector = action.target_id, self.services[action.target_id]
        if action.kind is ActionKind.THROTTLE:
            why = f"slurm cannot throttle service {sid}: a running job has no power level (shed or restore only)"
            return self._result(action, False, why)
        steps = plan(action.kind, sid, selector, await self.jobs())
        done: list[str] = []
        try:
            for step in steps:
                await self._run("scontrol", *step.args)
                if step.args[0] != "update":
                    done.append(f"{step.args[0]} {step.args[1]}")
        except SlurmCommandError as err:
            logger.warning("slurm refused %s on %s after [%s]: %s", action.kind, sid, ", ".join(done), err)
            return self._result(action, False, f"{err} (done before: {', '.join(done) or 'nothing'})")
        verb = "shed" if action.kind is ActionKind.SERVICE_SHED else "restored"
        message = f"service {sid} ({selector.describe()}) {verb}: {', '.join(done) or 'nothing to do'}"
        logger.info("slurm %s %s: %s", action.kind, sid, message)
        return self._result(action, True, message)

    def _result(self, action: Action, ok: bool, message: str) -> ActionResult:
        return ActionResult(command_id=action.command_id, ok=ok, message=message, t_s=self.now_s())


def node_available(node: Mapping[str, Any]) -> bool:
    """Whether a ``sinfo --json`` node can run work now (not down, drained or draining)."""
    state = str(node.get("state", "")).lower()
    flags = {str(f).upper() for f in node.get("state_flags", [])}
    return state not in _DOWN_STATES and not (flags & _UNAVAILABLE_FLAGS)


def _on_node(job: Mapping[str, Any], name: str) -> bool:
    # Multi-node jobs list a hostlist expression; the drivers here only move single-node jobs.
    return str(job.get("nodes") or "") == name


def _tags(node: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    flags = ",".join(sorted(str(f) for f in node.get("state_flags", [])))
    return tuple(
        sorted({("state", str(node.get("state", ""))), ("flags", flags), ("reason", str(node.get("reason", "")))})
    )
