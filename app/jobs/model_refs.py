"""Resolving a job spec's model reference to a local directory; shared by the API and the worker."""

from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.jobs.models import Job, JobStatus
from distillery.jobspec import ModelRef

MODEL_CONFIG = "config.json"


class ModelRefError(ValueError):
    """A reference that names no usable model; `field` is `path` or `job`, the part of the ref at fault."""

    def __init__(self, message: str, *, field: Literal["path", "job"]) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def student_dir(settings: Settings, job_id: str) -> Path:
    """Where a job's student lives in the artifact store, in `save_pretrained` form."""
    return settings.artifacts / "jobs" / job_id / "student"


def resolve_model_ref(ref: ModelRef, *, session: Session, tenant: str, settings: Settings) -> Path:
    """The directory of a referenced model; raises ModelRefError when it is not allowed or not there."""
    if ref.job is not None:
        return _resolve_job(ref.job, session=session, tenant=tenant, settings=settings)
    assert ref.path is not None  # the spec guarantees exactly one of path and job
    return _resolve_path(ref.path, roots=settings.model_roots)


def _resolve_path(reference: str, *, roots: list[Path]) -> Path:
    """A directory with a config.json inside one of the roots; `..` and symlinks cannot leave them."""
    try:
        return _find_model_dir(reference, roots=roots)
    except OSError as error:
        # A name the file system refuses (too long a component, say) names no model either.
        message = f"model path '{reference}' cannot be read: {error.strerror}"
        raise ModelRefError(message, field="path") from error


def _find_model_dir(reference: str, *, roots: list[Path]) -> Path:
    raw = Path(reference)
    candidates = [raw.resolve()] if raw.is_absolute() else [(root / raw).resolve() for root in roots]
    inside = [
        (candidate, root)
        for candidate in candidates
        for root in roots
        if candidate.is_relative_to(root.resolve())
    ]
    if not inside:
        raise ModelRefError(f"model path '{reference}' is outside the service's model roots", field="path")
    for candidate, _root in inside:
        if (candidate / MODEL_CONFIG).is_file():
            return candidate
    raise ModelRefError(
        f"no model directory with a {MODEL_CONFIG} at '{reference}' under the model roots", field="path"
    )


def _resolve_job(job_id: str, *, session: Session, tenant: str, settings: Settings) -> Path:
    """The student of a succeeded job of the same tenant."""
    status = session.scalar(select(Job.status).where(Job.id == job_id, Job.tenant == tenant))
    if status is None:
        raise ModelRefError(f"no job '{job_id}' exists", field="job")
    if status != JobStatus.SUCCEEDED:
        raise ModelRefError(
            f"job '{job_id}' is {status}; only a succeeded job's student can be used", field="job"
        )
    directory = student_dir(settings, job_id)
    if not (directory / MODEL_CONFIG).is_file():
        raise ModelRefError(f"job '{job_id}' has no stored student", field="job")
    return directory
