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
from app.files import service as files_service
from app.jobs.control_base import control_base
from app.jobs.controls import create_control, stop_control
from app.jobs.events import append_event
from app.jobs.model_listing import where_models_are
from app.jobs.model_refs import ModelRefError, resolve_model_ref
from app.jobs.models import TERMINAL_STATUSES, Artifact, Checkpoint, Job, JobEvent, JobStatus
from app.jobs.scheduling import scheduling_columns
from app.jobs.schemas import JobCreate
from app.jobs.teacher_head import check_teacher_head
from app.jobs.transitions import IllegalTransition, transition
from app.jobs.vocabulary import vocabulary_mismatch
from app.jobs.webhook_events import record_status_change
from distillery.jobspec import DATA_FILE_FIELDS, JobSpec, ResourcesSpec
from distillery.jobspec.data_format import detect_format
from distillery.jobspec.methods import METHOD_CLASSES, TEACHER_METHODS

ACTIVE_STATUSES = [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING]
CANCEL_RACE_RETRIES = 3
METHOD_NAMES = frozenset(cls.type_name() for cls in METHOD_CLASSES)


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
    """Queue a job (and its control); returns it and whether it is new, not an Idempotency-Key replay."""
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
        **scheduling_columns(job_in),
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
    if job_in.control:
        create_control(
            session, parent=job, spec=job_in, base=control_base(session, tenant=tenant, spec=job_in)
        )
    record_status_change(session, job_id=job.id, status=JobStatus.QUEUED)
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
    check_resources(spec.resources, settings=settings)
    check_files(session=session, tenant=tenant, spec=spec)
    refs = {
        "teacher": spec.teacher,
        "student.model": spec.student.model,
        "student.base": spec.student.base,
        "report.control": spec.report.control,
    }
    resolved = {}
    for prefix, ref in refs.items():
        if ref is None:
            continue
        try:
            resolved[prefix] = resolve_model_ref(ref, session=session, tenant=tenant, settings=settings)
        except ModelRefError as error:
            message = f"{error.message} ({where_models_are(settings)})" if error.missing else error.message
            raise InvalidField(f"{prefix}.{error.field}", message, code="model_not_found") from error
    if spec.control_mode == "base" and spec.student.base is None:
        check_teacher_job_base(session=session, tenant=tenant, spec=spec, settings=settings)
    teacher, student = resolved.get("teacher"), resolved.get("student.model")
    if isinstance(teacher, Path) and spec.teacher is not None and spec.teacher.path is not None:
        check_teacher_head(task=spec.task, reference=spec.teacher.path, teacher_dir=teacher)
    # A model in an object store is not read here: the worker loads both tokenizers and checks them.
    if isinstance(teacher, Path) and isinstance(student, Path):
        check_vocabularies(spec, teacher_dir=teacher, student_dir=student)


def check_teacher_job_base(*, session: Session, tenant: str, spec: JobSpec, settings: Settings) -> None:
    """A base control's model, taken from its teacher job's own start, is still there to read."""
    base = control_base(session, tenant=tenant, spec=spec)
    assert base is not None
    try:
        resolve_model_ref(base, session=session, tenant=tenant, settings=settings)
    except ModelRefError as error:
        message = f"the teacher job's starting model, the control's base, cannot be used: {error.message}"
        raise InvalidField("student.base", message, code="model_not_found") from error


def check_resources(resources: ResourcesSpec, *, settings: Settings) -> None:
    """A job asks for no more than this deployment lets one job have."""
    if resources.devices > settings.max_job_devices:
        raise InvalidField(
            "resources.devices",
            f"devices must be at most {settings.max_job_devices} on this service "
            "(DISTILLERY_MAX_JOB_DEVICES)",
        )
    if resources.nodes > 1 and settings.executor != "ray":
        raise InvalidField(
            "resources.nodes",
            "nodes above 1 need the ray executor; this service runs each job on one machine "
            "(DISTILLERY_EXECUTOR)",
        )
    if resources.nodes > settings.ray_max_job_nodes:
        raise InvalidField(
            "resources.nodes",
            f"nodes must be at most {settings.ray_max_job_nodes} on this service "
            "(DISTILLERY_RAY_MAX_JOB_NODES)",
        )
    memory = resources.min_memory_gb
    if memory is not None and memory > settings.max_job_memory_gb:
        raise InvalidField(
            "resources.min_memory_gb",
            f"min_memory_gb must be at most {settings.max_job_memory_gb:g} on this service "
            "(DISTILLERY_MAX_JOB_MEMORY_GB)",
        )


# A local path where a file id belongs: the examples name local files, which the CLI uploads for them.
NOT_AN_ID_HINT = (
    "; a data file is named by the id (file_...) that POST /v1/files returned "
    "(`distillery submit` uploads a local path it is given and puts the id in its place)"
)


def check_files(*, session: Session, tenant: str, spec: JobSpec) -> None:
    """Every data file exists and has the columns the spec reads, in the causal-LM format it names."""
    data = spec.data
    files = (
        ("data.train_file", data.train_file),
        ("data.eval_file", data.eval_file),
        ("data.test_file", data.test_file),
        ("data.transfer_file", data.transfer_file),
    )
    for param, file_id in files:
        if file_id is None:
            continue
        file = files_service.file_for_job(session=session, tenant=tenant, file_id=file_id)
        if file is None:
            hint = "" if file_id.startswith("file_") else NOT_AN_ID_HINT
            raise InvalidField(param, f"no file '{file_id}' exists{hint}", code="file_not_found")
        # A transfer set is unlabeled: it needs the text columns only.
        columns = _required_columns(
            spec, file_id, file.columns, file.format, labels=param != "data.transfer_file"
        )
        for column_param, column in columns.items():
            if column not in file.columns:
                raise InvalidField(
                    column_param,
                    f"file '{file_id}' has no column '{column}' (columns: {', '.join(file.columns)})",
                    code="column_not_found",
                )


def _required_columns(
    spec: JobSpec, file_id: str, file_columns: list[str], file_format: str, *, labels: bool
) -> dict[str, str]:
    """The columns the spec reads from a file with these columns and format, by the spec field naming each."""
    data = spec.data
    if spec.task == "causal_lm":
        fmt = data.format
        if fmt == "auto":
            fmt = detect_format(file_columns, messages_column=data.messages_column)
        if fmt == "chat" and file_format == "csv":
            raise InvalidField(
                "data.format",
                f"file '{file_id}' is CSV; chat messages are read from JSON Lines or Parquet",
                code="invalid_data_format",
            )
        return data.lm_columns(fmt)
    required = {"data.text_column": data.text_column}
    if labels:
        required["data.label_column"] = data.label_column
    if data.text_pair_column is not None:
        required["data.text_pair_column"] = data.text_pair_column
    return required


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
    *,
    session: Session,
    tenant: str,
    limit: int,
    after: str | None,
    status: JobStatus | None = None,
    parent_id: str | None = None,
    sweep_id: str | None = None,
    method: str | None = None,
    name: str | None = None,
) -> tuple[list[Job], bool]:
    """A page of the tenant's jobs, newest first, filtered by status, parent, sweep, method or name; and if
    more follow. The page walks the tenant's (created_at, id) index and stops once it is full."""
    statement = select(Job).where(Job.tenant == tenant)
    if sweep_id is not None:
        statement = statement.where(Job.sweep_id == sweep_id)
    if status is not None:
        statement = statement.where(Job.status == status.value)
    if parent_id is not None:
        statement = statement.where(Job.parent_id == parent_id)
    if method is not None:
        statement = statement.where(Job.spec["method"]["type"].as_string() == _known_method(method))
    if name is not None:
        statement = statement.where(Job.name.ilike(f"%{_escape_like(name)}%", escape="\\"))
    return page_newest_first(session, statement, entity=Job, tenant=tenant, limit=limit, after=after)


def _known_method(method: str) -> str:
    """The method filter as given when it names a method; a 422 on `method` listing them otherwise."""
    if method not in METHOD_NAMES:
        raise InvalidField("method", f"unknown method '{method}' (one of: {', '.join(sorted(METHOD_NAMES))})")
    return method


def _escape_like(text: str) -> str:
    """`text` matched literally inside a LIKE pattern: its wildcards and the escape character escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def cancel_job(*, session: Session, tenant: str, job_id: str) -> Job:
    """Cancel a queued job at once, ask a running one to stop, its control too; a finished job is a 409."""
    job = _cancel(session=session, job=get_job(session=session, tenant=tenant, job_id=job_id))
    stop_control(session, parent_id=job.id, reason=f"job {job.id} cancelled")
    return job


def _cancel(*, session: Session, job: Job) -> Job:
    job_id = job.id
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


def delete_job(*, session: Session, tenant: str, job_id: str) -> list[str]:
    """Delete a finished job's rows and its control's; returns their store folders, to remove after commit."""
    job = get_job(session=session, tenant=tenant, job_id=job_id)
    if job.parent_id is not None:
        raise Conflict(
            f"job '{job_id}' is the control of job '{job.parent_id}'; deleting that job deletes both",
            code="job_is_control",
        )
    if job.sweep_id is not None:
        raise Conflict(
            f"job '{job_id}' belongs to sweep '{job.sweep_id}'; deleting the sweep deletes its jobs",
            code="job_in_sweep",
        )
    jobs = [job]
    if job.control_job_id is not None:
        jobs.insert(0, get_job(session=session, tenant=tenant, job_id=job.control_job_id))
    active = active_specs(session=session, tenant=tenant)
    for doomed in jobs:
        if doomed.status not in TERMINAL_STATUSES:
            raise Conflict(
                f"job '{doomed.id}' is {doomed.status}; only a finished job can be deleted",
                code="job_not_finished",
            )
        users = [other for other, spec in active if doomed.id in job_refs(spec)]
        if users:
            raise Conflict(
                f"unfinished job(s) {', '.join(users)} use the student of job '{doomed.id}'",
                code="job_in_use",
            )
    for doomed in jobs:  # the control first: its row refers to its parent's
        session.delete(doomed)
        session.flush()
    return [f"jobs/{doomed.id}" for doomed in jobs]


def active_jobs_using(*, session: Session, tenant: str, file_id: str) -> list[str]:
    """Ids of the tenant's unfinished jobs that read a file."""
    return [
        job_id
        for job_id, spec in active_specs(session=session, tenant=tenant)
        if file_id in {spec.get("data", {}).get(key) for key in DATA_FILE_FIELDS}
    ]


def active_specs(*, session: Session, tenant: str) -> list[tuple[str, dict[str, Any]]]:
    """The specs of the tenant's unfinished jobs; few at any time, so they are matched in Python."""
    rows = session.execute(
        select(Job.id, Job.spec).where(
            Job.tenant == tenant, Job.status.in_([s.value for s in ACTIVE_STATUSES])
        )
    )
    return [(row.id, row.spec) for row in rows]


def job_refs(spec: dict[str, Any]) -> set[str]:
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
