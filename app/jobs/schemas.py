"""HTTP shapes of jobs, their events, checkpoints and artifacts, and the request examples."""

import logging
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import quote

import yaml
from pydantic import BaseModel, Field, JsonValue, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Row

from app.api.errors import ErrorFields
from app.api.pagination import ListObject
from app.api.timestamps import optional_unix_seconds, unix_seconds
from app.jobs.models import Artifact, Checkpoint, Job, JobEvent, JobStatus
from distillery.jobspec import JobSpec
from distillery.jobspec.text import PRINTABLE, PRINTABLE_PATTERN, Text, text_limits

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(str(files("distillery") / "examples"))
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
REQUEST_ONLY_FIELDS = frozenset({"name", "metadata"})
# Keys carry no pattern of their own: pydantic would turn it into patternProperties, which leaves other
# keys unconstrained; the field's schema names the key rules instead (`propertyNames`).
MetadataKey = Annotated[str, Field(max_length=MAX_METADATA_KEY_CHARS), PRINTABLE]
MetadataValue = Annotated[str, text_limits(MAX_METADATA_VALUE_CHARS), PRINTABLE]
METADATA_SCHEMA: dict[str, JsonValue] = {
    "propertyNames": {"maxLength": MAX_METADATA_KEY_CHARS, "pattern": PRINTABLE_PATTERN},
    "maxProperties": MAX_METADATA_PAIRS,
}


class JobCreate(JobSpec):
    """A job to run: the job spec, plus an optional name and metadata for the client's own bookkeeping."""

    name: Text | None = Field(None, description="A label shown in lists.")
    metadata: dict[MetadataKey, MetadataValue] | None = Field(
        None,
        json_schema_extra=METADATA_SCHEMA,
        description="Up to 16 string pairs (keys up to 64 characters, values up to 512).",
    )

    @model_validator(mode="after")
    def _metadata_fits(self) -> Self:
        pairs = self.metadata or {}
        too_long = any(
            len(k) > MAX_METADATA_KEY_CHARS or len(v) > MAX_METADATA_VALUE_CHARS for k, v in pairs.items()
        )
        if len(pairs) > MAX_METADATA_PAIRS or too_long:
            raise PydanticCustomError(
                "param:metadata",
                "metadata holds up to 16 pairs, keys up to 64 and values up to 512 characters",
            )
        return self

    def spec_dict(self) -> dict[str, Any]:
        """The job spec alone, defaults filled in, as stored and run."""
        return self.model_dump(mode="json", exclude=set(REQUEST_ONLY_FIELDS))


class JobProgress(BaseModel):
    """How far training has come."""

    step: int
    total_steps: int | None
    epoch: float | None
    estimated_finish_at: int | None = Field(None, description="Unix seconds.")


class JobError(ErrorFields):
    """Why a job failed, and whether the failure was the infrastructure's (the job was retried)."""

    retryable: bool = Field(
        False, description="A transient infrastructure failure: the job was retried up to its attempt limit."
    )


class JobPublic(BaseModel):
    """A job: its spec, where it is in its lifecycle, and its outcome."""

    id: str = Field(..., examples=["job_3f9a1b2c3d4e5f6a7b8c9d0e"])
    object: Literal["job"] = "job"
    name: str | None
    status: JobStatus
    spec: dict[str, Any] = Field(..., description="The validated job spec, defaults filled in.")
    progress: JobProgress
    # A new job has no error: the example shows none (a schema-made one would show a filled error object).
    error: JobError | None = Field(
        None, description="Why the job failed; `type` user or system.", examples=[None]
    )
    attempts: int = Field(..., description="Deliveries to a worker so far.")
    result: dict[str, Any] | None = Field(
        None,
        description="Report of a succeeded job: sizes, metrics with their standard errors (`stderr`) and "
        "example counts, retention, latency. With a control, `result.control` holds the control run's "
        "outcome, its `mode` and what it `measures`, and once it succeeded `gain` (per metric, how much "
        "better the student is than the control on `split`, test when there is one) and `verdict`: "
        "helped, did not help, or teacher no better than control, on the primary metric.",
    )
    control_job_id: str | None = Field(
        None, description="The job's control run, when its spec asks for one (`control`)."
    )
    parent_id: str | None = Field(None, description="For a control run: the job it is the control of.")
    sweep_id: str | None = Field(
        None,
        description="For a job of a recipe sweep (a trial, its test evaluation or its control): the sweep.",
    )
    waiting_for: Literal["resources", "quota"] | None = Field(
        None,
        description="Why a queued job cannot start yet: `resources`, no live worker has the accelerator, "
        "devices or memory it asks for (it waits, it never fails for it); `quota`, its tenant runs as many "
        "jobs or devices as its limit allows. Null when it waits its turn.",
    )
    created_at: int
    started_at: int | None
    finished_at: int | None
    cancel_requested_at: int | None
    metadata: dict[str, Any] | None

    @classmethod
    def from_row(cls, job: Job | Row[Any]) -> "JobPublic":
        """The public view of a stored job: its ORM object, or a row of the columns read here by name."""
        return cls(
            id=job.id,
            name=job.name,
            status=JobStatus(job.status),
            spec=job.spec,
            progress=JobProgress(
                step=job.step,
                total_steps=job.total_steps,
                epoch=job.epoch,
                estimated_finish_at=optional_unix_seconds(job.estimated_finish_at),
            ),
            error=_error_of(job.error),
            attempts=job.attempts,
            result=job.result,
            control_job_id=job.control_job_id,
            parent_id=job.parent_id,
            sweep_id=job.sweep_id,
            waiting_for=job.waiting_for if job.status == JobStatus.QUEUED else None,  # type: ignore[arg-type]
            created_at=unix_seconds(job.created_at),
            started_at=optional_unix_seconds(job.started_at),
            finished_at=optional_unix_seconds(job.finished_at),
            cancel_requested_at=optional_unix_seconds(job.cancel_requested_at),
            metadata=job.metadata_,
        )


def _error_of(stored: dict[str, Any] | None) -> JobError | None:
    """A job's stored error in the public shape; anything not marked as the user's is the system's."""
    if not stored:
        return None
    return JobError(
        code=str(stored.get("code") or "error"),
        message=str(stored.get("message") or ""),
        param=stored.get("param"),
        type="user" if stored.get("type") == "user" else "system",
        retryable=bool(stored.get("retryable")),
    )


class JobList(ListObject[JobPublic, str]):
    """A page of jobs, newest first."""


class JobEventPublic(BaseModel):
    """One line of a job's log; `id` is its sequence number within the job."""

    id: int = Field(..., description="Sequence number, increasing within the job; pass as `after`.")
    object: Literal["job.event"] = "job.event"
    created_at: int
    level: str = Field(..., examples=["info"])
    type: str = Field(..., description="message, metrics, checkpoint, status or control.")
    message: str
    data: dict[str, Any] | None

    @classmethod
    def from_row(cls, event: JobEvent) -> "JobEventPublic":
        """The public view of a stored event."""
        return cls(
            id=event.seq,
            created_at=unix_seconds(event.created_at),
            level=event.level,
            type=event.type,
            message=event.message,
            data=event.data,
        )


class JobEventList(ListObject[JobEventPublic, int]):
    """A page of events, oldest first."""


class CheckpointPublic(BaseModel):
    """A saved training state."""

    id: str
    object: Literal["checkpoint"] = "checkpoint"
    job_id: str
    step: int
    epoch: float | None
    metrics: dict[str, Any] | None
    is_best: bool
    created_at: int

    @classmethod
    def from_row(cls, checkpoint: Checkpoint) -> "CheckpointPublic":
        """The public view of a stored checkpoint."""
        return cls(
            id=checkpoint.id,
            job_id=checkpoint.job_id,
            step=checkpoint.step,
            epoch=checkpoint.epoch,
            metrics=checkpoint.metrics,
            is_best=checkpoint.is_best,
            created_at=unix_seconds(checkpoint.created_at),
        )


class CheckpointList(ListObject[CheckpointPublic, str]):
    """Every checkpoint of a job, by step."""


class ArtifactPublic(BaseModel):
    """A file a job produced; download it from `url`."""

    id: str
    object: Literal["artifact"] = "artifact"
    job_id: str
    name: str = Field(..., examples=["student.tar.gz"])
    media_type: str
    bytes: int
    sha256: str
    url: str = Field(..., description="Path of the download endpoint.")
    created_at: int

    @classmethod
    def from_row(cls, artifact: Artifact) -> "ArtifactPublic":
        """The public view of a stored artifact."""
        return cls(
            id=artifact.id,
            job_id=artifact.job_id,
            name=artifact.name,
            media_type=artifact.media_type,
            bytes=artifact.bytes,
            sha256=artifact.sha256,
            url=f"/v1/jobs/{artifact.job_id}/artifacts/{quote(artifact.name)}",
            created_at=unix_seconds(artifact.created_at),
        )


class ArtifactList(ListObject[ArtifactPublic, str]):
    """Every artifact of a job, by name."""


BUILT_IN_EXAMPLE: dict[str, Any] = {
    "name": "sst2-response-kd",
    "teacher": {"path": "bert-base-sst2"},
    "student": {"init": "teacher_layers", "layers": [0, 4, 8, 11]},
    "data": {
        "train_file": "file_5c1d0e2f3a4b5c6d7e8f9a0b",
        "text_column": "sentence",
        "label_column": "label",
    },
    "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
    "training": {"epochs": 3, "batch_size": 32, "learning_rate": 5e-5},
}


FIRST_EXAMPLE = "response"
EXAMPLE_DESCRIPTION = (
    "Its data files are local paths, which `distillery submit` uploads: here, upload each with "
    "POST /v1/files and put the id it returns (file_...) in its place. `distillery quickstart` leaves the "
    "models it names."
)


def load_job_examples(folder: Path = EXAMPLES_DIR) -> dict[str, dict[str, Any]]:
    """OpenAPI examples of a job request: one per YAML file of `distillery/examples/`, by file stem."""
    examples: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            value = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            logger.warning("skipping unreadable example %s", path.name, exc_info=True)
            continue
        if isinstance(value, dict):
            examples[path.stem] = {
                "summary": path.stem.replace("_", " "),
                "description": EXAMPLE_DESCRIPTION,
                "value": value,
            }
    if FIRST_EXAMPLE in examples:  # the pages' example menu opens on the first: the quickstart's method
        examples = {FIRST_EXAMPLE: examples[FIRST_EXAMPLE]} | examples
    return examples or {"response": {"summary": "response-based distillation", "value": BUILT_IN_EXAMPLE}}
