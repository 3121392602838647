"""Runs one job: claim it, run the engine, store its artifacts and record the outcome.

A job on one device runs in this process. A job on several runs as a process group
(`worker/process_group.py`) whose rank 0 calls `run_claimed` here, as this process would.
"""

import logging
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.config import Settings, get_settings
from app.core.storage import ArtifactStore, size_and_sha256
from app.jobs.lifecycle import ClaimedJob, JobStatus, StoredArtifact, register_artifacts
from distillery.jobspec import JobSpec
from engine.callbacks import Callbacks
from worker.cpu_threads import limit_torch_threads
from worker.handover import take_over
from worker.job_inputs import DatabaseInputs, JobInputs
from worker.outcome import Outcome
from worker.reporter import JobReporter
from worker.transient import retry_database

if TYPE_CHECKING:
    from engine.run import RunResult

logger = logging.getLogger(__name__)


def execute_job(job_id: str, *, worker_id: str) -> None:
    """Claim, run and finish a job; every outcome ends in the database, and a transient failure is retried."""
    settings = get_settings()
    job = retry_database(
        lambda: take_over(job_id=job_id, worker_id=worker_id),
        budget_seconds=settings.database_retry_seconds,
        what=f"claiming job {job_id}",
    )
    if job is None:
        return
    if job_devices(job) > 1:
        from worker.process_group import run_group

        run_group(job, worker_id=worker_id, settings=settings)
    else:
        run_claimed(job, worker_id=worker_id, settings=settings)


def job_devices(job: ClaimedJob) -> int:
    """How many devices (processes) the job's spec asks for."""
    return int((job.spec.get("resources") or {}).get("devices", 1))


def run_claimed(
    job: ClaimedJob, *, worker_id: str, settings: Settings, inputs: JobInputs | None = None
) -> None:
    """Run a claimed job in this process, reporting to the database, and record how it ended.

    The process is the job's only one, or rank 0 of its group (given the inputs resolved beforehand).
    Rank 0 records no unexpected error: a collective fails there when another rank dies, so it is
    raised for the job process, which sees the whole group's end and retries the job.
    """
    store = ArtifactStore(settings.artifacts)
    reporter = JobReporter(job_id=job.id, worker_id=worker_id, settings=settings, store=store)
    outcome = Outcome(job_id=job.id, worker_id=worker_id, settings=settings, reporter=reporter)
    try:
        with reporter:
            result = _run(job, settings=settings, store=store, reporter=reporter, inputs=inputs)
    except Exception as error:
        if inputs is not None and outcome.is_unexpected(error):
            raise
        outcome.failed(error, attempt=job.attempts)
        return
    if reporter.lease_lost:
        return  # the reconciler may have given the job to someone else; their outcome counts
    if result is None:
        outcome.record(JobStatus.CANCELLED)
    else:
        outcome.record(JobStatus.SUCCEEDED, result=result)


def run_engine(
    job: ClaimedJob, *, settings: Settings, callbacks: Callbacks, inputs: JobInputs | None = None
) -> "RunResult":
    """Run the engine on the job in this process."""
    from engine.run import run_job  # torch is imported only inside the job's process
    from engine.teacher_cache import TeacherCacheConfig

    limit_torch_threads(processes=job_devices(job))
    spec = JobSpec.model_validate(job.spec)
    reads = inputs or DatabaseInputs(spec=spec, tenant=job.tenant, settings=settings)
    return run_job(
        spec,
        workdir=ArtifactStore(settings.artifacts).path(f"jobs/{job.id}"),
        callbacks=callbacks,
        resolve_model=reads.model,
        resolve_file=reads.file,
        teacher_cache=TeacherCacheConfig(settings.teacher_cache, settings.teacher_cache_max_bytes),
    )


def _run(
    job: ClaimedJob,
    *,
    settings: Settings,
    store: ArtifactStore,
    reporter: JobReporter,
    inputs: JobInputs | None,
) -> dict[str, Any] | None:
    """Run the engine and store the student; returns the result summary, or None when it was cancelled."""
    result = run_engine(job, settings=settings, callbacks=reporter, inputs=inputs)
    if result.status == "cancelled" or result.student_dir is None:
        return None
    workdir = store.path(f"jobs/{job.id}")
    archive = workdir / "student.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(result.student_dir, arcname="student")
    _register_artifacts(job.id, [archive, *result.outputs], store=store, settings=settings)
    return result.report


def _register_artifacts(job_id: str, paths: list[Path], *, store: ArtifactStore, settings: Settings) -> None:
    artifacts = [_described(path, store=store) for path in paths if path.is_file()]
    retry_database(
        lambda: register_artifacts(job_id=job_id, artifacts=artifacts),
        budget_seconds=settings.database_retry_seconds,
        what=f"job {job_id}'s artifacts",
    )


def _described(path: Path, *, store: ArtifactStore) -> StoredArtifact:
    """A stored file's name, key, size and hash."""
    size, sha256 = size_and_sha256(path)
    location = str(path.resolve().relative_to(store.root.resolve()))
    return StoredArtifact(name=path.name, location=location, bytes=size, sha256=sha256)
