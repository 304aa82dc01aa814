"""Site services as sets of Slurm jobs: which jobs a service owns, and how to shed and restore them.

A service is mapped to the jobs matching a :class:`JobSelector` (partition, account, QOS and/or
job name; every field given must match). Shedding and restoring are planned here, as lists of
``scontrol`` commands, from one ``squeue --json`` listing; :class:`~wattwise.drivers.slurm.SlurmDriver`
runs them. The planning is pure so that its rules are tested without a cluster.

Shed (``service_shed``), per job of the service:

* ``RUNNING``: ``scontrol suspend`` (mode ``suspend``, the default: the job keeps its memory
  and nodes, its CPUs stop, so power falls at once and it resumes where it was), or
  ``scontrol requeuehold`` (mode ``requeue_hold``: the job is killed and goes back to the
  queue held; for jobs that must not sit suspended, e.g. GPU jobs whose devices stay busy, or
  sites where suspension is disabled). A job that is not requeueable refuses ``requeuehold``.
* ``PENDING`` and not held: ``scontrol hold``, so nothing of the service starts while it is shed.

Every job wattwise suspends or holds is marked ``AdminComment=wattwise-shed:<service>``, and
restore (``service_restore``) acts only on marked jobs: ``scontrol resume`` (suspended) or
``scontrol release`` (held), then clears the mark. A job suspended or held by a person is
left alone, and a restarted controller still knows which jobs are its own. The mark replaces
the job's admin comment.

Throttle has no Slurm counterpart for a running job (no CPU share can be taken from it without
the job's cooperation), so ``throttle`` on a service is refused with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from wattwise.model.values import ActionKind, Quality, Reading

ShedMode = Literal["suspend", "requeue_hold"]
MARK_PREFIX = "wattwise-shed:"
_LIVE = frozenset({"RUNNING", "PENDING", "SUSPENDED", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD"})


@dataclass(frozen=True, slots=True)
class JobSelector:
    """The Slurm jobs of one site service: every given field must match.

    Attributes:
        partition: Partition name (``-p``).
        account: Account (``-A``; needs accounting, ``AccountingStorageType``).
        qos: Quality of service (``-q``).
        name: Job name (``-J``).
        shed: ``suspend`` or ``requeue_hold`` for running jobs.
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    name: str | None = None
    shed: ShedMode = "suspend"

    def matches(self, job: Mapping[str, Any]) -> bool:
        """Whether an ``squeue --json`` job belongs to the service."""
        wanted = (("partition", self.partition), ("account", self.account), ("qos", self.qos), ("name", self.name))
        given = [(k, v) for k, v in wanted if v is not None]
        return bool(given) and all(str(job.get(k) or "") == v for k, v in given)

    def describe(self) -> str:
        """The selector as ``partition=batch,account=x`` (for messages)."""
        fields = (("partition", self.partition), ("account", self.account), ("qos", self.qos), ("name", self.name))
        return ",".join(f"{k}={v}" for k, v in fields if v is not None)


@dataclass(frozen=True, slots=True)
class Step:
    """One ``scontrol`` call: the verb and its arguments."""

    args: tuple[str, ...]


def service_jobs(selector: JobSelector, jobs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The live jobs of a service, oldest first."""
    mine = [j for j in jobs if selector.matches(j) and str(j.get("job_state")) in _LIVE]
    return sorted(mine, key=lambda j: int(j.get("job_id", 0)))


def _held(job: Mapping[str, Any]) -> bool:
    # JobHeldAdmin / JobHeldUser after ``hold``; "job requeued in held state" after ``requeuehold``.
    reason = str(job.get("state_reason", ""))
    return reason.startswith("JobHeld") or "held state" in reason


def _ours(job: Mapping[str, Any], service_id: str) -> bool:
    return str(job.get("admin_comment") or "") == MARK_PREFIX + service_id


def plan_shed(service_id: str, selector: JobSelector, jobs: Sequence[Mapping[str, Any]]) -> list[Step]:
    """``scontrol`` calls that shed the service: stop running jobs, hold pending ones.

    Jobs already suspended or held are skipped, so a repeated shed plans nothing.
    """
    steps: list[Step] = []
    for job in service_jobs(selector, jobs):
        job_id, state = str(job["job_id"]), str(job.get("job_state"))
        if state == "RUNNING":
            verb = "suspend" if selector.shed == "suspend" else "requeuehold"
            steps.append(Step((verb, job_id)))
        elif state == "PENDING" and not _held(job):
            steps.append(Step(("hold", job_id)))
        else:
            continue
        steps.append(Step(("update", f"jobid={job_id}", f"AdminComment={MARK_PREFIX}{service_id}")))
    return steps


def plan_restore(service_id: str, selector: JobSelector, jobs: Sequence[Mapping[str, Any]]) -> list[Step]:
    """``scontrol`` calls that restore what wattwise shed: resume or release its marked jobs."""
    steps: list[Step] = []
    for job in service_jobs(selector, jobs):
        if not _ours(job, service_id):
            continue
        job_id, state = str(job["job_id"]), str(job.get("job_state"))
        if state == "SUSPENDED":
            steps.append(Step(("resume", job_id)))
        elif state == "PENDING" and _held(job):
            steps.append(Step(("release", job_id)))
        steps.append(Step(("update", f"jobid={job_id}", "AdminComment=")))
    return steps


def plan(kind: ActionKind, service_id: str, selector: JobSelector, jobs: Sequence[Mapping[str, Any]]) -> list[Step]:
    """The shed or restore plan of ``kind`` (``service_shed`` or ``service_restore``)."""
    if kind is ActionKind.SERVICE_SHED:
        return plan_shed(service_id, selector, jobs)
    return plan_restore(service_id, selector, jobs)


def service_readings(
    service_id: str, selector: JobSelector, jobs: Sequence[Mapping[str, Any]], t_s: float
) -> list[Reading]:
    """``available`` and ``throttle_frac`` of a service.

    ``available`` is 1 while at least one of its jobs runs, else 0; tags count its jobs by
    state (``running``, ``suspended``, ``pending``, ``held``). ``throttle_frac`` is the level
    the controller plans from: 0 while any of its jobs carries wattwise's shed mark (the
    service is shed and waits for a restore), else 1. Without it the controller would read
    a shed service as still at full level and never plan its restore.
    """
    mine = service_jobs(selector, jobs)
    states = [str(j.get("job_state")) for j in mine]
    held = sum(1 for j in mine if _held(j))
    counts = {
        "running": states.count("RUNNING"),
        "suspended": states.count("SUSPENDED"),
        "pending": states.count("PENDING") - held,
        "held": held,
    }
    tags = tuple(sorted((k, str(v)) for k, v in counts.items()))
    shed = any(_ours(j, service_id) for j in mine)
    return [
        Reading(service_id, "available", float(counts["running"] > 0), t_s, Quality.GOOD, tags),
        Reading(service_id, "throttle_frac", 0.0 if shed else 1.0, t_s, Quality.GOOD),
    ]
