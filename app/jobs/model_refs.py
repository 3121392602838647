"""Resolving a job spec's model reference to its folder; shared by the API and the worker.

A model is a local directory, or a folder of an object store (under an `s3://` model root, or a job's
student in a remote artifact store), which the worker copies to its scratch before loading it.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings, is_s3_url
from app.core.storage import ArtifactStore, checked_key, open_store, store_at
from app.jobs.models import Job, JobStatus
from distillery.jobspec import ModelRef

MODEL_CONFIG = "config.json"


class ModelRefError(ValueError):
    """A reference that names no usable model; `field` is `path` or `job`, the part of the ref at fault."""

    def __init__(self, message: str, *, field: Literal["path", "job"], missing: bool = False) -> None:
        super().__init__(message)
        self.message, self.field, self.missing = message, field, missing


@dataclass(frozen=True)
class StoredModel:
    """A model folder in an object store: the store and the key of the folder."""

    store: ArtifactStore
    key: str

    def __str__(self) -> str:
        return f"{self.store.url.rstrip('/')}/{self.key}"


ModelLocation = Path | StoredModel


def student_key(job_id: str) -> str:
    """The key of a job's student folder (`save_pretrained` form) in the artifact store."""
    return f"jobs/{job_id}/student"


def resolve_model_ref(ref: ModelRef, *, session: Session, tenant: str, settings: Settings) -> ModelLocation:
    """The folder of a referenced model; raises ModelRefError when it is not allowed or not there."""
    if ref.job is not None:
        return _resolve_job(ref.job, session=session, tenant=tenant, settings=settings)
    assert ref.path is not None  # the spec guarantees exactly one of path and job
    return _resolve_path(ref.path, roots=settings.model_roots, settings=settings)


def _resolve_path(reference: str, *, roots: list[Path | str], settings: Settings) -> ModelLocation:
    """A folder with a config.json inside one of the roots; `..` and symlinks cannot leave them."""
    try:
        if is_s3_url(reference):
            return _find_stored_model(reference, roots=roots, settings=settings)
        if Path(reference).is_absolute():
            return _find_model_dir(reference, roots=roots)
        found = [_model_under(root, reference, roots=roots, settings=settings) for root in roots]
    except OSError as error:
        # A name the file system refuses (too long a component, say) names no model either.
        message = f"model path '{reference}' cannot be read: {error.strerror}"
        raise ModelRefError(message, field="path") from error
    if all(inside is False for inside, _ in found):
        raise ModelRefError(f"model path '{reference}' is outside the service's model roots", field="path")
    return _first_or_missing([location for _, location in found], reference)


def _model_under(
    root: Path | str, reference: str, *, roots: list[Path | str], settings: Settings
) -> tuple[bool, ModelLocation | None]:
    """Whether `reference` below `root` stays inside the roots, and the model there if there is one."""
    if isinstance(root, Path):
        candidate = (root / reference).resolve()
        inside = any(candidate.is_relative_to(r.resolve()) for r in roots if isinstance(r, Path))
        return inside, candidate if inside and (candidate / MODEL_CONFIG).is_file() else None
    try:
        key = checked_key(reference.strip("/"))
    except ValueError:
        return False, None
    store = store_at(root, settings)
    return True, StoredModel(store, key) if store.size(f"{key}/{MODEL_CONFIG}") is not None else None


def _find_stored_model(url: str, *, roots: list[Path | str], settings: Settings) -> ModelLocation:
    """A folder with a config.json at an `s3://` URL under one of the roots."""
    found = [
        _model_under(root, url.removeprefix(f"{root.rstrip('/')}/"), roots=roots, settings=settings)
        for root in roots
        if isinstance(root, str) and url.startswith(f"{root.rstrip('/')}/")
    ]
    if not any(inside for inside, _ in found):
        raise ModelRefError(f"model path '{url}' is outside the service's model roots", field="path")
    return _first_or_missing([location for _, location in found], url)


def _find_model_dir(reference: str, *, roots: list[Path | str]) -> Path:
    """An absolute local directory inside one of the local roots."""
    candidate = Path(reference).resolve()
    if not any(candidate.is_relative_to(root.resolve()) for root in roots if isinstance(root, Path)):
        raise ModelRefError(f"model path '{reference}' is outside the service's model roots", field="path")
    if (candidate / MODEL_CONFIG).is_file():
        return candidate
    raise _missing(reference)


def _first_or_missing(locations: list[ModelLocation | None], reference: str) -> ModelLocation:
    for location in locations:
        if location is not None:
            return location
    raise _missing(reference)


def _missing(reference: str) -> ModelRefError:
    return ModelRefError(
        f"no model directory with a {MODEL_CONFIG} at '{reference}' under the model roots",
        field="path",
        missing=True,
    )


def _resolve_job(job_id: str, *, session: Session, tenant: str, settings: Settings) -> ModelLocation:
    """The student of a succeeded job of the same tenant."""
    status = session.scalar(select(Job.status).where(Job.id == job_id, Job.tenant == tenant))
    if status is None:
        raise ModelRefError(f"no job '{job_id}' exists", field="job")
    if status != JobStatus.SUCCEEDED:
        raise ModelRefError(
            f"job '{job_id}' is {status}; only a succeeded job's student can be used", field="job"
        )
    store = open_store(settings)
    if store.size(f"{student_key(job_id)}/{MODEL_CONFIG}") is None:
        raise ModelRefError(f"job '{job_id}' has no stored student", field="job")
    return store.local_path(student_key(job_id)) or StoredModel(store, student_key(job_id))
