"""The models and files a job's spec names, as local paths: asked of the database, or resolved beforehand.

A job run by one process asks the database as the engine needs each input. A process group has them all
resolved once by the job process, so that no rank but rank 0 touches the database and every rank reads
the same paths.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.core.config import Settings
from app.jobs.lifecycle import ModelRefError, file_path, model_dir
from distillery.jobspec import DATA_FILE_FIELDS, JobSpec, ModelRef
from engine.errors import UserError
from worker.model_downloads import local_model
from worker.transient import retry_database, retry_store


class JobInputs(Protocol):
    """Where the engine finds a model or a data file the spec names."""

    def model(self, ref: ModelRef) -> Path: ...

    def file(self, file_id: str) -> Path: ...


def model_key(ref: ModelRef) -> str:
    """A model reference as a dictionary key that survives a trip through JSON."""
    return ref.model_dump_json()


@dataclass(frozen=True)
class ResolvedInputs:
    """Every model and file of a spec, resolved beforehand: the reads of a rank."""

    models: dict[str, str]
    files: dict[str, str]

    def model(self, ref: ModelRef) -> Path:
        return Path(self.models[model_key(ref)])

    def file(self, file_id: str) -> Path:
        return Path(self.files[file_id])


@dataclass(frozen=True)
class DatabaseInputs:
    """The tenant's models and files, looked up in the database as they are asked for."""

    spec: JobSpec
    tenant: str
    settings: Settings

    def model(self, ref: ModelRef) -> Path:
        """The model's local folder; one kept in an object store is copied to the scratch first."""
        try:
            location = retry_database(
                lambda: model_dir(ref=ref, tenant=self.tenant, settings=self.settings),
                budget_seconds=self.settings.database_retry_seconds,
                what="resolving a model",
            )
            return local_model(location, settings=self.settings)
        except ModelRefError as error:
            owner = _model_field(ref, self.spec)
            raise UserError(error.message, code="model_not_found", param=f"{owner}.{error.field}") from error

    def file(self, file_id: str) -> Path:
        path = retry_store(
            lambda: retry_database(
                lambda: file_path(file_id=file_id, tenant=self.tenant, settings=self.settings),
                budget_seconds=self.settings.database_retry_seconds,
                what=f"resolving {file_id}",
            ),
            budget_seconds=self.settings.storage_retry_seconds,
            what=f"fetching {file_id}",
        )
        if path is None:
            field = next(
                (name for name in DATA_FILE_FIELDS if getattr(self.spec.data, name) == file_id), "train_file"
            )
            raise UserError(f"file {file_id} does not exist", code="file_not_found", param=f"data.{field}")
        return path

    def resolve_all(self) -> ResolvedInputs:
        """Every model and file the spec names; raises the UserError of the first one missing."""
        models = {model_key(ref): str(self.model(ref)) for ref in self.spec.model_refs()}
        file_ids = [getattr(self.spec.data, name) for name in DATA_FILE_FIELDS]
        files = {file_id: str(self.file(file_id)) for file_id in file_ids if file_id is not None}
        return ResolvedInputs(models=models, files=files)


def _model_field(ref: ModelRef, spec: JobSpec) -> str:
    """The spec field that names a model, for the error's `param`."""
    if ref == spec.teacher:
        return "teacher"
    if ref == spec.student.model:
        return "student.model"
    return "report.control"
