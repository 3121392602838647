"""Runs one job: claim it, run the engine, store its artifacts and record the outcome.

A job on one device runs in this process. A job on several runs as a process group
(`worker/process_group.py`) whose rank 0 calls `run_claimed` here, as this process would. The engine
works in the job's local folder (`worker/job_folder.py`), which an object store mirrors.
"""

import logging
import os
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.config import Settings, get_settings
from app.core.storage import open_store, size_and_sha256
from app.jobs.lifecycle import (
    ClaimedJob,
    JobStatus,
    StoredArtifact,
    register_artifacts,
    teacher_output_readers,
)
from distillery.jobspec import JobSpec
from engine.callbacks import Callbacks
from worker.cpu_threads import limit_torch_threads
from worker.handover import take_over
from worker.job_folder import JobFolder
from worker.job_inputs import DatabaseInputs, JobInputs
from worker.library_logs import library_messages_in_job_log
from worker.outcome import Outcome
from worker.reporter import JobReporter
from worker.shared_teacher_cache import SharedTeacherCache
from worker.transient import retry_database

if TYPE_CHECKING:
    from engine.run import RunResult
    from engine.teacher_cache import TeacherCacheConfig

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
    if settings.executor == "ray":
        from worker.ray_job import run_on_ray  # Ray is an optional extra, imported in this mode only

        run_on_ray(job, worker_id=worker_id, settings=settings)
    elif job_devices(job) > 1:
        from worker.process_group import run_group

        run_group(job, worker_id=worker_id, settings=settings)
    else:
        if job.devices:  # before anything in this process initialises CUDA, which reads it once
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(device) for device in job.devices)
        run_claimed(job, worker_id=worker_id, settings=settings)


def job_devices(job: ClaimedJob) -> int:
    """How many devices (processes) the job's spec asks for."""
    return int((job.spec.get("resources") or {}).get("devices", 1))


def run_claimed(
    job: ClaimedJob,
    *,
    worker_id: str,
    settings: Settings,
    inputs: JobInputs | None = None,
    stops_on_cancel: bool = True,
) -> None:
    """Run a claimed job in this process, reporting to the database, and record how it ended.

    The process is the job's only one, or rank 0 of its group (given the inputs resolved beforehand).
    Rank 0 records no unexpected error: a collective fails there when another rank dies, so it is
    raised for the job process, which sees the whole group's end and retries the job. On Ray, rank 0
    leaves a cancel to the job process, which stops the Ray job (`stops_on_cancel` False).
    """
    folder = JobFolder.of(job.id, settings)
    reporter = JobReporter(
        job_id=job.id, worker_id=worker_id, settings=settings, folder=folder, stops_on_cancel=stops_on_cancel
    )
    outcome = Outcome(job_id=job.id, worker_id=worker_id, settings=settings, reporter=reporter)
    try:
        with reporter:
            if inputs is None:  # a group's job process fetched them before starting the ranks
                fetch_checkpoints(folder, reporter)
            result = _run(job, settings=settings, folder=folder, reporter=reporter, inputs=inputs)
    except Exception as error:
        if inputs is not None and outcome.is_unexpected(error):
            raise
        outcome.failed(error, attempt=job.attempts)
    else:
        if reporter.lease_lost:
            return  # the reconciler may have given the job to someone else; their outcome counts
        if result is None:
            outcome.record(JobStatus.CANCELLED)
        else:
            outcome.record(JobStatus.SUCCEEDED, result=result)
    if inputs is None:  # a group's folder is removed by its job process, once every rank has exited
        folder.remove_local()


def fetch_checkpoints(folder: JobFolder, reporter: Callbacks) -> None:
    """Copy the job's stored checkpoints that its local folder lacks, so that the engine resumes from them."""
    fetched = folder.fetch_checkpoints()
    if fetched:
        reporter.on_message(f"fetched {fetched} stored checkpoint(s) from the artifact store")


def run_engine(
    job: ClaimedJob, *, settings: Settings, callbacks: Callbacks, inputs: JobInputs | None = None
) -> "RunResult":
    """Run the engine on the job in this process."""
    from engine.run import run_job  # torch is imported only inside the job's process

    limit_torch_threads(processes=job_devices(job))
    spec = JobSpec.model_validate(job.spec)
    reads = inputs or DatabaseInputs(spec=spec, tenant=job.tenant, settings=settings)
    with library_messages_in_job_log(callbacks):
        return run_job(
            spec,
            workdir=JobFolder.of(job.id, settings).path,
            callbacks=callbacks,
            resolve_model=reads.model,
            resolve_file=reads.file,
            # Every rank of a group decides alike on the pass, so a group counts no other readers.
            teacher_cache=teacher_cache_config(
                settings, other_readers=other_readers(job, spec) if inputs is None else 0
            ),
        )


def teacher_cache_config(settings: Settings, *, other_readers: int = 0) -> "TeacherCacheConfig":
    """The local teacher cache; with a remote store, a bounded copy in scratch of the one the store shares.

    `other_readers`: other jobs that will read the same teacher outputs, so that a pass is worth storing.
    """
    from engine.teacher_cache import TeacherCacheConfig

    max_bytes = settings.teacher_cache_max_bytes
    if not settings.has_remote_store:
        return TeacherCacheConfig(settings.teacher_cache, max_bytes, other_readers=other_readers)
    local = (settings.teacher_cache_dir or settings.scratch / "teacher-cache").resolve()
    shared = SharedTeacherCache(open_store(settings), max_bytes=max_bytes)
    return TeacherCacheConfig(local, max_bytes, shared=shared, other_readers=other_readers)


def other_readers(job: ClaimedJob, spec: JobSpec) -> int:
    """The tenant's other unfinished jobs on the same teacher outputs; 0 when the database cannot say."""
    try:
        return teacher_output_readers(job_id=job.id, tenant=job.tenant, spec=spec)
    except Exception as error:  # an optimisation: its failure must not fail the job
        logger.warning("job %s: could not count the jobs sharing its teacher outputs: %s", job.id, error)
        return 0


def _run(
    job: ClaimedJob,
    *,
    settings: Settings,
    folder: JobFolder,
    reporter: JobReporter,
    inputs: JobInputs | None,
) -> dict[str, Any] | None:
    """Run the engine and store the student; returns the result summary, or None when it was cancelled."""
    result = run_engine(job, settings=settings, callbacks=reporter, inputs=inputs)
    if result.status == "cancelled" or result.student_dir is None:
        return None
    archive = folder.path / "student.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(result.student_dir, arcname="student")
    folder.store_tree(result.student_dir)  # a later job may name it as its teacher or student
    _register_artifacts(job.id, [archive, *result.outputs], folder=folder, settings=settings)
    return result.report


def _register_artifacts(job_id: str, paths: list[Path], *, folder: JobFolder, settings: Settings) -> None:
    """Store the files, then record their rows."""
    artifacts = [_stored(path, folder=folder) for path in paths if path.is_file()]
    retry_database(
        lambda: register_artifacts(job_id=job_id, artifacts=artifacts),
        budget_seconds=settings.database_retry_seconds,
        what=f"job {job_id}'s artifacts",
    )


def _stored(path: Path, *, folder: JobFolder) -> StoredArtifact:
    """Store a file of the job's folder; its name, key, size and hash."""
    size, sha256 = size_and_sha256(path)
    return StoredArtifact(name=path.name, location=folder.store_file(path), bytes=size, sha256=sha256)
