"""Jobs: create (idempotently, after checking what the spec refers to), read, cancel and delete.

Functions take keyword arguments, flush and never commit: the request owns the transaction.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.api.errors import Conflict, InvalidField, NotFound
from app.api.pagination import page_newest_first
from app.core.base import utcnow
from app.core.config import Settings
from app.files.models import File
from app.jobs.events import append_event
from app.jobs.model_refs import ModelRefError, resolve_model_ref
from app.jobs.models import TERMINAL_STATUSES, Artifact, Checkpoint, Job, JobEvent, JobStatus
from app.jobs.schemas import JobCreate
from app.jobs.transitions import IllegalTransition, transition
from app.jobs.vocabulary import vocabulary_mismatch
from distillery.jobspec import DATA_FILE_FIELDS, JobSpec
from distillery.jobspec.methods import TEACHER_METHODS

ACTIVE_STATUSES = [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING]
CANCEL_RACE_RETRIES = 3


def request_hash(job_in: JobCreate) -> str:
    """SHA-256 of the canonical request (defaults filled in, keys sorted), to recognise a retried POST."""
    canonical = json.dumps(job_in.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def create_job(
    *,
    session: Session,
    tenant: str,
    job_in: JobCreate,
    settings: Settings,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Queue a job; returns it and whether it is new (False when an Idempotency-Key replays a request)."""
    digest = request_hash(job_in)
    if idempotency_key is not None:
        existing = _job_with_key(session=session, tenant=tenant, key=idempotency_key)
        if existing is not None:
            return _replayed(existing, digest), False
    check_references(session=session, tenant=tenant, spec=job_in, settings=settings)
    job = Job(
        tenant=tenant,
        name=job_in.name,
        spec=job_in.spec_dict(),
        metadata_=job_in.metadata,
        status=JobStatus.QUEUED,
        idempotency_key=idempotency_key,
        request_hash=digest,
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        # A concurrent request with the same key committed first: answer with its job.
        existing = _job_with_key(session=session, tenant=tenant, key=idempotency_key)
        if existing is None:
            raise
        return _replayed(existing, digest), False
    append_event(session, job_id=job.id, type="status", message="job queued", data={"status": "queued"})
    return job, True


def _job_with_key(*, session: Session, tenant: str, key: str | None) -> Job | None:
    return session.scalar(select(Job).where(Job.tenant == tenant, Job.idempotency_key == key))


def _replayed(job: Job, digest: str) -> Job:
    if job.request_hash != digest:
        raise Conflict(
            "this Idempotency-Key was already used with a different request body",
            code="idempotency_key_reused",
        )
    return job


def check_references(*, session: Session, tenant: str, spec: JobSpec, settings: Settings) -> None:
    """Check what the spec points at: files and their columns, model references, service limits."""
    if spec.training.epochs > settings.max_epochs:
        raise InvalidField("training.epochs", f"epochs must be at most {settings.max_epochs} on this service")
    if spec.training.max_steps is not None and spec.training.max_steps > settings.max_total_steps:
        raise InvalidField(
            "training.max_steps", f"max_steps must be at most {settings.max_total_steps} on this service"
        )
    data = spec.data
    required = {"data.text_column": data.text_column}
    if spec.task == "sequence_classification":
        required["data.label_column"] = data.label_column
    if data.text_pair_column is not None:
        required["data.text_pair_column"] = data.text_pair_column
    if data.prompt_column is not None:
        required["data.prompt_column"] = data.prompt_column
    # A transfer set is unlabeled: it needs the text columns only.
    texts_only = {param: column for param, column in required.items() if param != "data.label_column"}
    files = (
        ("data.train_file", data.train_file, required),
        ("data.eval_file", data.eval_file, required),
        ("data.test_file", data.test_file, required),
        ("data.transfer_file", data.transfer_file, texts_only),
    )
    for param, file_id, columns in files:
        if file_id is None:
            continue
        # A shared lock: a concurrent deletion of the file waits for this job to commit, and then sees it.
        file = session.scalar(
            select(File).where(File.id == file_id, File.tenant == tenant).with_for_update(read=True)
        )
        if file is None:
            raise InvalidField(param, f"no file '{file_id}' exists", code="file_not_found")
        for column_param, column in columns.items():
            if column not in file.columns:
                raise InvalidField(
                    column_param,
                    f"file '{file_id}' has no column '{column}' (columns: {', '.join(file.columns)})",
                    code="column_not_found",
                )
    refs = {
        "teacher": spec.teacher,
        "student.model": spec.student.model,
        "report.control": spec.report.control,
    }
    resolved = {}
    for prefix, ref in refs.items():
        if ref is None:
            continue
        try:
            resolved[prefix] = resolve_model_ref(ref, session=session, tenant=tenant, settings=settings)
        except ModelRefError as error:
            raise InvalidField(f"{prefix}.{error.field}", error.message, code="model_not_found") from error
    if "teacher" in resolved and "student.model" in resolved:
        check_vocabularies(spec, teacher_dir=resolved["teacher"], student_dir=resolved["student.model"])


def check_vocabularies(spec: JobSpec, *, teacher_dir: Path, student_dir: Path) -> None:
    """Refuse a teacher method whose teacher and student tokenizers differ, unless it distils across them."""
    if spec.method.type not in TEACHER_METHODS or getattr(spec.method, "cross_tokenizer", None) is not None:
        return
    sizes = vocabulary_mismatch(teacher_dir, student_dir)
    if sizes is None:
        return
    advice = " (or, for a causal LM, set method.cross_tokenizer: uld)" if spec.task == "causal_lm" else ""
    raise InvalidField(
        "student.model",
        f"the student's tokenizer (model '{student_dir.name}', {sizes[1]:,} tokens) differs from the "
        f"teacher's (model '{teacher_dir.name}', {sizes[0]:,} tokens); the teacher must read the same "
        f"tokens{advice}",
        code="incompatible_model",
    )


def get_job(*, session: Session, tenant: str, job_id: str) -> Job:
    """A job of the tenant; 404 for a missing job and for another tenant's."""
    job = session.scalar(select(Job).where(Job.id == job_id, Job.tenant == tenant))
    if job is None:
        raise NotFound("job", job_id)
    return job


def list_jobs(
    *, session: Session, tenant: str, limit: int, after: str | None, status: JobStatus | None = None
) -> tuple[list[Job], bool]:
    """A page of the tenant's jobs, newest first, optionally of one status, and whether more follow."""
    statement = select(Job).where(Job.tenant == tenant)
    if status is not None:
        statement = statement.where(Job.status == status.value)
    return page_newest_first(session, statement, entity=Job, tenant=tenant, limit=limit, after=after)


def cancel_job(*, session: Session, tenant: str, job_id: str) -> Job:
    """Cancel a queued job at once, ask a running one to stop; a finished job is a 409."""
    job = get_job(session=session, tenant=tenant, job_id=job_id)
    for _ in range(CANCEL_RACE_RETRIES):
        status = JobStatus(job.status)
        now = utcnow()
        try:
            if status == JobStatus.QUEUED:
                values = {"cancel_requested_at": now, "finished_at": now}
                transition(
                    session, job_id=job_id, target=JobStatus.CANCELLED, sources=[status], values=values
                )
                message = "job cancelled"
            elif status == JobStatus.RUNNING:
                values = {"cancel_requested_at": now}
                transition(
                    session, job_id=job_id, target=JobStatus.CANCELLING, sources=[status], values=values
                )
                message = "cancellation requested; the worker stops at its next step"
            elif status == JobStatus.CANCELLING:
                return job
            else:
                raise Conflict(f"job '{job_id}' is already {status}", code="job_finished")
        except IllegalTransition:
            # A worker moved the job meanwhile (e.g. took it from the queue): decide again on its new state.
            session.refresh(job)
            continue
        session.refresh(job)
        append_event(session, job_id=job_id, type="status", message=message, data={"status": job.status})
        return job
    raise Conflict(f"job '{job_id}' kept changing state; try again", code="job_busy")


def delete_job(*, session: Session, tenant: str, job_id: str) -> str:
    """Delete a finished job's rows; returns its store folder, to remove after commit."""
    job = get_job(session=session, tenant=tenant, job_id=job_id)
    if job.status not in TERMINAL_STATUSES:
        raise Conflict(
            f"job '{job_id}' is {job.status}; only a finished job can be deleted", code="job_not_finished"
        )
    users = [
        other for other, spec in _active_specs(session=session, tenant=tenant) if job_id in _job_refs(spec)
    ]
    if users:
        raise Conflict(f"unfinished job(s) {', '.join(users)} use this job's student", code="job_in_use")
    session.delete(job)
    session.flush()
    return f"jobs/{job_id}"


def active_jobs_using(*, session: Session, tenant: str, file_id: str) -> list[str]:
    """Ids of the tenant's unfinished jobs that read a file."""
    return [
        job_id
        for job_id, spec in _active_specs(session=session, tenant=tenant)
        if file_id in {spec.get("data", {}).get(key) for key in DATA_FILE_FIELDS}
    ]


def _active_specs(*, session: Session, tenant: str) -> list[tuple[str, dict[str, Any]]]:
    """The specs of the tenant's unfinished jobs; few at any time, so they are matched in Python."""
    rows = session.execute(
        select(Job.id, Job.spec).where(
            Job.tenant == tenant, Job.status.in_([s.value for s in ACTIVE_STATUSES])
        )
    )
    return [(row.id, row.spec) for row in rows]


def _job_refs(spec: dict[str, Any]) -> set[str]:
    """Ids of the jobs whose students a spec reads."""
    refs = [spec.get("teacher"), (spec.get("student") or {}).get("model")]
    return {ref["job"] for ref in refs if isinstance(ref, dict) and ref.get("job")}


def list_events(
    *, session: Session, tenant: str, job_id: str, after: int | None, limit: int
) -> tuple[list[JobEvent], bool]:
    """A page of a job's events in order, after a sequence number, and whether more follow."""
    get_job(session=session, tenant=tenant, job_id=job_id)
    statement = select(JobEvent).where(JobEvent.job_id == job_id)
    if after is not None:
        statement = statement.where(JobEvent.seq > after)
    events = list(session.scalars(statement.order_by(JobEvent.seq).limit(limit + 1)))
    return events[:limit], len(events) > limit


def list_checkpoints(*, session: Session, tenant: str, job_id: str) -> list[Checkpoint]:
    """A job's checkpoints by step."""
    get_job(session=session, tenant=tenant, job_id=job_id)
    statement = select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step, Checkpoint.id)
    return list(session.scalars(statement))


def list_artifacts(*, session: Session, tenant: str, job_id: str) -> list[Artifact]:
    """A job's artifacts by name."""
    get_job(session=session, tenant=tenant, job_id=job_id)
    return list(session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.name)))


def get_artifact(*, session: Session, tenant: str, job_id: str, name: str) -> Artifact:
    """One artifact of a job, by name."""
    get_job(session=session, tenant=tenant, job_id=job_id)
    artifact = session.scalar(select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name))
    if artifact is None:
        raise NotFound("artifact", name)
    return artifact
