"""A job on a Ray cluster (DISTILLERY_EXECUTOR=ray): the job process submits it, follows it, ends it whole.

The Celery worker stays the control plane. This process resolves the job's inputs and submits the Ray
job (`python -m worker.ray_entry`, with the job id and attempt as its submission id, since a retried job
needs a new one) through Ray's Jobs API, then polls its status and the database: a cancel, a stop of this
process or a lost lease becomes `stop_job`. Rank 0, on the cluster, reports and records the job's end;
this process records it where rank 0 could not, with the same outcomes as a torchrun group
(`worker/process_group.py`): a Ray job that failed (a worker lost, a node gone) requeues the job as
`process_group_failed`, a cancel ends it cancelled, and a cluster that does not answer requeues it as
`cluster_unavailable`.
"""

import logging
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass

from ray.job_submission import JobStatus as RayStatus
from ray.job_submission import JobSubmissionClient

from app.core.config import Settings
from app.jobs.lifecycle import ClaimedJob, JobStatus, heartbeat
from distillery.jobspec import JobSpec
from worker.group_dir import Handoff, handoff_json
from worker.group_failure import ClusterUnavailable, GroupFailed
from worker.job_folder import JobFolder
from worker.job_inputs import DatabaseInputs
from worker.outcome import Outcome
from worker.process_group import JobWatch, StopReason, StopRequest
from worker.reporter import JobReporter

logger = logging.getLogger(__name__)
HANDOFF_ENV = "DISTILLERY_RAY_HANDOFF"
# The last line of a failed entrypoint's output starts with this (`worker/ray_entry.py`).
FAILURE_PREFIX = "distillery-ray-failure: "
POLL_SECONDS = 0.5
# Once rank 0 recorded the job's end, how long the Ray job has to exit by itself: Ray Train's shutdown
# (the workers' group, the controller, the driver) takes several seconds on a busy machine.
SETTLE_SECONDS = 30.0
# Ray sends the entrypoint SIGTERM, then SIGKILL after RAY_JOB_STOP_WAIT_TIME_S (3 s by default).
STOP_WAIT_SECONDS = 8.0
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class RayEnd:
    """How a Ray job ended: why the watch ended, its last status, and its failure in words."""

    reason: StopReason
    status: RayStatus | None
    failure: str


def submission_id(job: ClaimedJob) -> str:
    """The Ray job's submission id: the job's id and attempt, unique per claim."""
    return f"{job.id}-attempt-{job.attempts}"


def run_on_ray(job: ClaimedJob, *, worker_id: str, settings: Settings) -> None:
    """Run a claimed job on the Ray cluster; record its end where rank 0 could not."""
    folder = JobFolder.of(job.id, settings)
    reporter = JobReporter(job_id=job.id, worker_id=worker_id, settings=settings, folder=folder)
    outcome = Outcome(job_id=job.id, worker_id=worker_id, settings=settings, reporter=reporter)
    try:
        spec = JobSpec.model_validate(job.spec)
        inputs = DatabaseInputs(spec=spec, tenant=job.tenant, settings=settings).resolve_all()
    except Exception as error:
        outcome.failed(error, attempt=job.attempts)
        return
    submission = submission_id(job)
    try:
        client = JobSubmissionClient(settings.ray_address)
        client.submit_job(
            entrypoint=f"{shlex.quote(sys.executable)} -m worker.ray_entry",
            submission_id=submission,
            runtime_env={"env_vars": job_environment(Handoff(job, worker_id, inputs), settings)},
            # The entrypoint only drives Ray Train; the workers it starts hold the devices.
            entrypoint_num_cpus=0,
            entrypoint_num_gpus=0,
            metadata={"distillery_job": job.id},
        )
    except Exception as error:
        refused = ClusterUnavailable(f"the Ray cluster at {settings.ray_address} refused the job: {error}")
        outcome.retry_later(refused, attempt=job.attempts)
        return
    logger.info("job %s: submitted to Ray as %s", job.id, submission)
    end = follow(client, submission, JobWatch(job.id, worker_id, settings, cancel_grace_seconds=0.0))
    logger.info("job %s: Ray job %s ended %s (%s)", job.id, submission, end.status, end.reason.value)
    record_ray_end(end, submission=submission, outcome=outcome, attempt=job.attempts)


def job_environment(handoff: Handoff, settings: Settings) -> dict[str, str]:
    """What the Ray job's processes need: this process's settings, made absolute, and the handoff."""
    env = {name: value for name, value in os.environ.items() if name.startswith("DISTILLERY_")}
    env.update(
        DISTILLERY_DATA_DIR=str(settings.data_dir),
        DISTILLERY_DATABASE_URL=settings.database_url,
        DISTILLERY_ARTIFACT_DIR=str(settings.artifacts),
        DISTILLERY_TEACHER_CACHE_DIR=str(settings.teacher_cache),
    )
    # An object store's endpoint, region and credentials, for the nodes that read and write it.
    env.update({name: value for name, value in os.environ.items() if name.startswith("AWS_")})
    env[HANDOFF_ENV] = handoff_json(handoff)
    if "PYTHONPATH" in os.environ:  # a checkout rather than an installed package
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def follow(client: JobSubmissionClient, submission: str, job_watch: JobWatch) -> RayEnd:
    """Poll the Ray job until it ends or must be stopped, stop it if need be; how it ended."""
    told_to_stop = StopRequest()
    previous = signal.signal(signal.SIGTERM, told_to_stop.handle)
    try:
        reason = watch_ray_job(client, submission, job_watch, told_to_stop)
        if reason is not StopReason.EXITED:
            stop(client, submission)
    finally:
        signal.signal(signal.SIGTERM, previous)
    try:
        status = client.get_job_status(submission)
        return RayEnd(reason, status, failure_of(client, submission))
    except Exception as error:
        return RayEnd(reason, None, f"the Ray cluster did not answer ({type(error).__name__})")


def watch_ray_job(
    client: JobSubmissionClient, submission: str, job_watch: JobWatch, told_to_stop: StopRequest
) -> StopReason:
    """Wait until the Ray job ends, or until it must be stopped; returns why.

    Once the job is no longer this worker's (rank 0 recorded its end), the Ray job has a while to exit
    by itself, as a torchrun group's ranks do.
    """
    answered = time.monotonic()
    ended_at: float | None = None
    while True:
        if told_to_stop.requested:
            return StopReason.TOLD_TO_STOP
        now = time.monotonic()
        try:
            if client.get_job_status(submission).is_terminal():
                return StopReason.EXITED
            answered = now
        except Exception as error:
            logger.warning("the Ray cluster did not answer about %s: %s", submission, type(error).__name__)
            if now - answered > job_watch.settings.lease_seconds:
                return StopReason.CLUSTER_LOST
        if ended_at is None:
            reason = job_watch.reason_to_stop(now)
            if reason is StopReason.JOB_ENDED:
                ended_at = now
            elif reason is not None:
                return reason
        elif now - ended_at > SETTLE_SECONDS:
            return StopReason.JOB_ENDED
        time.sleep(POLL_SECONDS)


def stop(client: JobSubmissionClient, submission: str) -> None:
    """`stop_job`, then wait a little for Ray to end it (SIGTERM, then SIGKILL to the entrypoint)."""
    try:
        client.stop_job(submission)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while time.monotonic() < deadline and not client.get_job_status(submission).is_terminal():
            time.sleep(0.2)
    except Exception as error:
        logger.warning("could not stop the Ray job %s: %s", submission, error)


def failure_of(client: JobSubmissionClient, submission: str) -> str:
    """The entrypoint's one-line failure, else Ray's message; the log's tail goes to this process's log."""
    logs = client.get_job_logs(submission).splitlines()
    logger.info("the last lines of Ray job %s:\n%s", submission, "\n".join(logs[-LOG_TAIL_LINES:]))
    said = [line.split(FAILURE_PREFIX, 1)[1] for line in logs if FAILURE_PREFIX in line]
    if said:
        return said[-1]
    message = (client.get_job_info(submission).message or "").strip().splitlines()
    return message[0] if message else "no message"


def record_ray_end(end: RayEnd, *, submission: str, outcome: Outcome, attempt: int) -> None:
    """Record the job's end where rank 0 did not: a failed Ray job is retried, a cancel ends it."""
    if end.reason in (StopReason.TOLD_TO_STOP, StopReason.JOB_ENDED):
        return  # the lease runs out and the reconciler decides, as for a torchrun group
    if end.reason is StopReason.CANCEL_OVERDUE:
        outcome.record(JobStatus.CANCELLED)
    elif end.reason is StopReason.CLUSTER_LOST:
        outcome.retry_later(ClusterUnavailable(f"Ray job {submission}: {end.failure}"), attempt=attempt)
    elif end.status != RayStatus.SUCCEEDED and still_ours(outcome):
        failure = GroupFailed(f"Ray job {submission} {str(end.status).lower()}: {end.failure}")
        outcome.retry_later(failure, attempt=attempt)


def still_ours(outcome: Outcome) -> bool:
    """Whether the job is still this worker's, i.e. rank 0 did not record its end."""
    try:
        return heartbeat(job_id=outcome.job_id, worker_id=outcome.worker_id) is not None
    except Exception:
        return True  # the requeue's compare-and-set decides
