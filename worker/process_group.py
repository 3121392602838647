"""A job on several devices: the job process runs it as one torchrun group, watches it and ends it whole.

Rank 0 reports and records the job's end (`worker/rank.py`). This process resolves the job's inputs,
starts the group, keeps an eye on it, and stops it (SIGTERM to every process group of it, SIGKILL after
a grace) when it is told to stop, once rank 0 has exited, or once the job is no longer this worker's. A
group that fails before rank 0 recorded anything is a transient failure: the job is queued again and
resumes from its last checkpoint.
"""

import enum
import logging
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.core.config import Settings
from app.core.db import is_database_unreachable
from app.jobs.lifecycle import ClaimedJob, JobStatus, heartbeat
from distillery.jobspec import JobSpec
from worker.execution import fetch_checkpoints
from worker.group_dir import GroupDir, Handoff
from worker.group_failure import GroupFailed, describe_failure
from worker.group_launch import ProcessGroup, group_environment, torchrun_command
from worker.job_folder import JobFolder
from worker.job_inputs import DatabaseInputs
from worker.outcome import Outcome
from worker.reporter import JobReporter

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.5
# Once rank 0 has exited, or the job has ended, how long the other ranks have to finish by themselves.
SETTLE_SECONDS = 5.0
# A cancel that rank 0 has not acted on in this long ends the group from here.
CANCEL_OVERDUE_SECONDS = 30.0


class StopReason(enum.Enum):
    """Why the watch ended."""

    EXITED = "the group exited"
    TOLD_TO_STOP = "the job process was told to stop"
    LEADER_EXITED = "rank 0 exited"
    JOB_ENDED = "the job is no longer this worker's"
    CANCEL_OVERDUE = "a cancel was not acted on"
    CLUSTER_LOST = "the Ray cluster stopped answering"


@dataclass(frozen=True)
class GroupEnd:
    """How a group ended: why it was stopped, the agent's exit code and its last output."""

    reason: StopReason
    exit_code: int
    agent_output: str


def run_group(job: ClaimedJob, *, worker_id: str, settings: Settings) -> None:
    """Run a claimed job as one process per device; record its end where rank 0 could not."""
    job_folder = JobFolder.of(job.id, settings)
    reporter = JobReporter(job_id=job.id, worker_id=worker_id, settings=settings, folder=job_folder)
    outcome = Outcome(job_id=job.id, worker_id=worker_id, settings=settings, reporter=reporter)
    try:
        spec = JobSpec.model_validate(job.spec)
        with reporter:  # its heartbeat keeps the lease while models and checkpoints download
            inputs = DatabaseInputs(spec=spec, tenant=job.tenant, settings=settings).resolve_all()
            fetch_checkpoints(job_folder, reporter)
    except Exception as error:
        outcome.failed(error, attempt=job.attempts)
        job_folder.remove_local()
        return
    processes = spec.resources.devices
    with tempfile.TemporaryDirectory(prefix="distillery-group-") as folder:
        group_dir = GroupDir(Path(folder))
        group_dir.write_handoff(Handoff(job=job, worker_id=worker_id, inputs=inputs))
        watch_job = JobWatch(job.id, worker_id, settings)
        end = run_until_ended(job, processes=processes, group_dir=group_dir, job_watch=watch_job)
        logger.info(
            "job %s: the group ended (%s), agent exit code %s", job.id, end.reason.value, end.exit_code
        )
        record_end(end, group_dir=group_dir, processes=processes, outcome=outcome, attempt=job.attempts)
        # A job that ended without rank 0 recording it may be someone else's by now: its folder stays.
        if group_dir.leader_done() or end.reason is not StopReason.JOB_ENDED:
            job_folder.remove_local()


def record_end(end: GroupEnd, *, group_dir: GroupDir, processes: int, outcome: Outcome, attempt: int) -> None:
    """Record the job's end when rank 0 did not: a failed group is retried, an unheeded cancel ends it."""
    if group_dir.leader_done() or end.reason in (StopReason.TOLD_TO_STOP, StopReason.JOB_ENDED):
        return  # rank 0 recorded the end, or the lease runs out and the reconciler decides
    if end.reason is StopReason.CANCEL_OVERDUE:
        outcome.record(JobStatus.CANCELLED)
        return
    errors = {rank: text for rank in range(processes) if (text := group_dir.error(rank)) is not None}
    failure = describe_failure(end.agent_output, exit_code=end.exit_code, rank_errors=errors)
    outcome.retry_later(GroupFailed(failure), attempt=attempt)


def run_until_ended(
    job: ClaimedJob, *, processes: int, group_dir: GroupDir, job_watch: "JobWatch"
) -> GroupEnd:
    """Start the group, watch it until it ends or must be stopped, and stop whatever is left of it."""
    told_to_stop = StopRequest()
    previous = signal.signal(signal.SIGTERM, told_to_stop.handle)
    try:
        group = ProcessGroup(
            torchrun_command(job, processes=processes),
            env=group_environment(job, processes=processes, group_dir=group_dir),
            group_dir=group_dir,
        )
        try:
            reason = watch(group, job_watch, told_to_stop)
        finally:
            exit_code = group.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return GroupEnd(reason=reason, exit_code=exit_code, agent_output=group.agent_output())


def watch(group: ProcessGroup, job_watch: "JobWatch", told_to_stop: "StopRequest") -> StopReason:
    """Wait until the group exits, or until it must be stopped; returns why.

    Once rank 0 has exited or the job is no longer this worker's, the other ranks have a few seconds to
    finish by themselves, as they do after rank 0 recorded the job's end.
    """
    pending: StopReason | None = None
    stop_at = 0.0
    while not group.exited():
        time.sleep(POLL_SECONDS)
        if told_to_stop.requested:
            return StopReason.TOLD_TO_STOP
        now = time.monotonic()
        if pending is not None:
            if now >= stop_at:
                return pending
            continue
        pending = StopReason.LEADER_EXITED if group.rank_exited(0) else job_watch.reason_to_stop(now)
        if pending is StopReason.CANCEL_OVERDUE:
            return pending
        stop_at = now + SETTLE_SECONDS
    return pending or StopReason.EXITED


@dataclass
class StopRequest:
    """Set by SIGTERM (the Celery worker stopping); a plain flag, since a signal handler must not lock."""

    requested: bool = False

    def handle(self, *_: object) -> None:
        self.requested = True


@dataclass
class JobWatch:
    """Asks the database, every heartbeat period, whether the job is still this worker's to run.

    Its heartbeat also keeps the lease while the ranks start, before rank 0's reporter beats.
    """

    job_id: str
    worker_id: str
    settings: Settings
    # How long a cancel may wait for rank 0 before the group is stopped from here (0 on Ray: stop_job).
    cancel_grace_seconds: float = CANCEL_OVERDUE_SECONDS
    _next_check: float = 0.0
    _cancelling_since: float | None = field(default=None)

    def reason_to_stop(self, now: float) -> StopReason | None:
        """Why the group must stop now, or None."""
        if now < self._next_check:
            return None
        self._next_check = now + self.settings.heartbeat_seconds
        try:
            status = heartbeat(job_id=self.job_id, worker_id=self.worker_id)
        except Exception as error:
            if not is_database_unreachable(error):
                raise
            return None  # rank 0's reporter rides out the outage, and decides when the lease is lost
        if status is None:
            return StopReason.JOB_ENDED
        if status == JobStatus.CANCELLING:
            self._cancelling_since = self._cancelling_since or now
            if now - self._cancelling_since >= self.cancel_grace_seconds:
                return StopReason.CANCEL_OVERDUE
        return None
