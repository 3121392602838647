"""Runs one job: claim it, run the engine, store its artifacts and record the outcome."""

import logging
import tarfile
import traceback
from pathlib import Path
from typing import Any

from app.core.config import Settings, get_settings
from app.core.storage import ArtifactStore, size_and_sha256
from app.jobs.lifecycle import (
    ClaimedJob,
    JobError,
    JobStatus,
    ModelRefError,
    StoredArtifact,
    file_path,
    model_dir,
    register_artifacts,
)
from distillery.jobspec import DATA_FILE_FIELDS, JobSpec, ModelRef
from engine.errors import UserError
from worker.cpu_threads import limit_torch_threads
from worker.handover import take_over
from worker.outcome import Outcome
from worker.reporter import JobReporter
from worker.transient import retry_database, transient_code

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
    store = ArtifactStore(settings.artifacts)
    reporter = JobReporter(job_id=job_id, worker_id=worker_id, settings=settings, store=store)
    outcome = Outcome(job_id=job_id, worker_id=worker_id, settings=settings, reporter=reporter)
    try:
        with reporter:
            result = _run(job, settings=settings, store=store, reporter=reporter)
    except UserError as error:
        outcome.record(
            JobStatus.FAILED,
            error=JobError(code=error.code, message=error.message, param=error.param, type="user"),
        )
        return
    except Exception as error:
        if transient_code(error) is not None:
            outcome.retry_later(error, attempt=job.attempts)
            return
        logger.exception("job %s failed", job_id)
        outcome.record(
            JobStatus.FAILED,
            error=JobError(code="internal_error", message=f"{type(error).__name__}: {error}", type="system"),
            detail=traceback.format_exc(limit=5),
        )
        return
    if reporter.lease_lost:
        return  # the reconciler may have given the job to someone else; their outcome counts
    if result is None:
        outcome.record(JobStatus.CANCELLED)
    else:
        outcome.record(JobStatus.SUCCEEDED, result=result)


def _run(
    job: ClaimedJob, *, settings: Settings, store: ArtifactStore, reporter: JobReporter
) -> dict[str, Any] | None:
    """Run the engine; returns the result summary, or None when the run was cancelled."""
    from engine.run import run_job  # torch is imported only inside the job's process
    from engine.teacher_cache import TeacherCacheConfig

    limit_torch_threads()
    spec = JobSpec.model_validate(job.spec)
    workdir = store.path(f"jobs/{job.id}")
    result = run_job(
        spec,
        workdir=workdir,
        callbacks=reporter,
        resolve_model=lambda ref: _resolve_model(ref, spec=spec, tenant=job.tenant, settings=settings),
        resolve_file=lambda file_id: _resolve_file(file_id, spec=spec, tenant=job.tenant, settings=settings),
        teacher_cache=TeacherCacheConfig(settings.teacher_cache, settings.teacher_cache_max_bytes),
    )
    if result.status == "cancelled" or result.student_dir is None:
        return None
    archive = workdir / "student.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(result.student_dir, arcname="student")
    _register_artifacts(job.id, [archive, *result.outputs], store=store, settings=settings)
    return result.report


def _resolve_model(ref: ModelRef, *, spec: JobSpec, tenant: str, settings: Settings) -> Path:
    try:
        return retry_database(
            lambda: model_dir(ref=ref, tenant=tenant, settings=settings),
            budget_seconds=settings.database_retry_seconds,
            what="resolving a model",
        )
    except ModelRefError as error:
        owner = "teacher" if ref == spec.teacher else "student.model"
        raise UserError(error.message, code="model_not_found", param=f"{owner}.{error.field}") from error


def _resolve_file(file_id: str, *, spec: JobSpec, tenant: str, settings: Settings) -> Path:
    path = retry_database(
        lambda: file_path(file_id=file_id, tenant=tenant, settings=settings),
        budget_seconds=settings.database_retry_seconds,
        what=f"resolving {file_id}",
    )
    if path is None:
        field = next((name for name in DATA_FILE_FIELDS if getattr(spec.data, name) == file_id), "train_file")
        raise UserError(f"file {file_id} does not exist", code="file_not_found", param=f"data.{field}")
    return path


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
