"""Routes of distillation jobs: create, read, cancel, delete, and their events, checkpoints and artifacts."""

import logging
from functools import partial
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from kombu.exceptions import OperationalError as BrokerUnreachable
from sse_starlette import EventSourceResponse

from app.api.allowed_methods import HEAD_REQUEST
from app.api.deleted import Deleted
from app.api.deps import ReaderDep, SessionDep, SettingsDep, StoreDep
from app.api.errors import ApiError, error_responses
from app.api.pagination import After, Limit, list_page
from app.api.session_route import SessionEndingRoute
from app.auth.deps import CachedGrantDep, KeyRefused, TenantDep, invalid_key
from app.core.db import is_database_unreachable
from app.jobs import service
from app.jobs.models import JobStatus
from app.jobs.queue import publish_job
from app.jobs.reads import read_job
from app.jobs.schemas import (
    ArtifactList,
    ArtifactPublic,
    CheckpointList,
    CheckpointPublic,
    JobCreate,
    JobEventList,
    JobEventPublic,
    JobList,
    JobPublic,
    load_job_examples,
)
from app.jobs.stream import event_stream
from distillery.jobspec.text import ResourceId, Text

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/jobs", tags=["jobs"], route_class=SessionEndingRoute)

JobId = Annotated[ResourceId, Path(description="The job's id, e.g. `job_3f9a1b2c...`.")]
JOB_EXAMPLES = load_job_examples()
# Event ids are 32-bit sequence numbers in the database.
MAX_EVENT_ID = 2**31 - 1


@router.post(
    "",
    status_code=201,
    summary="Create a job",
    responses={
        200: {"model": JobPublic, "description": "A retry with the same Idempotency-Key: the existing job."},
        **error_responses(400, 401, 409, 413, 422),
    },
)
def create_job(
    job_in: Annotated[JobCreate, Body(openapi_examples=JOB_EXAMPLES)],  # type: ignore[arg-type]
    response: Response,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        Text | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            description="Retrying with the same key returns the same job instead of creating another.",
        ),
    ] = None,
) -> JobPublic:
    """Validate a job spec, check the files and models it names, and queue the job."""
    job, created = service.create_job(
        session=session, tenant=tenant, job_in=job_in, settings=settings, idempotency_key=idempotency_key
    )
    session.commit()
    if not created:
        response.status_code = 200
        return JobPublic.from_row(job)
    for job_id in [job.id, job.control_job_id] if job.control_job_id else [job.id]:
        _publish(job_id)
    return JobPublic.from_row(job)


def _publish(job_id: str) -> None:
    """Send a committed job to the workers; stored as queued, it is sent by the reconciler if this fails."""
    try:
        publish_job(job_id)
    except Exception as error:
        if isinstance(error, BrokerUnreachable) or is_database_unreachable(error):
            logger.warning("could not publish job %s (%s); the reconciler will", job_id, type(error).__name__)
        else:
            logger.exception("could not publish job %s; the reconciler will", job_id)


@router.get("", summary="List jobs", responses=error_responses(401, 422))
def list_jobs(
    session: SessionDep,
    tenant: TenantDep,
    limit: Limit = 20,
    after: After = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    parent_id: Annotated[
        ResourceId | None, Query(description="Only the control run of this job (its `control_job_id`).")
    ] = None,
    sweep_id: Annotated[
        ResourceId | None,
        Query(description="Only the jobs of this recipe sweep: its trials, test and control."),
    ] = None,
    method: Annotated[
        Text | None, Query(description="Only jobs of this method (`spec.method.type`), e.g. `response`.")
    ] = None,
    name: Annotated[
        Text | None,
        Query(min_length=1, description="Only jobs whose name contains this text, ignoring case."),
    ] = None,
) -> JobList:
    """List jobs, control runs included, newest first, optionally filtered by status, method, name, parent
    or sweep."""
    jobs, has_more = service.list_jobs(
        session=session,
        tenant=tenant,
        limit=limit,
        after=after,
        status=status,
        parent_id=parent_id,
        sweep_id=sweep_id,
        method=method,
        name=name,
    )
    return list_page(JobList, [JobPublic.from_row(job) for job in jobs], has_more=has_more)


@router.get("/{job_id}", summary="Get a job", responses=error_responses(401, 404, 422))
async def get_job(job_id: JobId, reader: ReaderDep, grant: CachedGrantDep) -> JobPublic:
    """Get a job's status, progress, error and result."""
    try:
        return await reader.run(partial(read_job, grant=grant, job_id=job_id))
    except KeyRefused:
        raise invalid_key() from None


@router.post("/{job_id}/cancel", summary="Cancel a job", responses=error_responses(401, 404, 409, 422))
def cancel_job(job_id: JobId, session: SessionDep, tenant: TenantDep) -> JobPublic:
    """Cancel a queued job at once, or ask a running one to stop at its next step; its control too."""
    return JobPublic.from_row(service.cancel_job(session=session, tenant=tenant, job_id=job_id))


@router.delete("/{job_id}", summary="Delete a job", responses=error_responses(401, 404, 409, 422, 503))
def delete_job(job_id: JobId, session: SessionDep, tenant: TenantDep, store: StoreDep) -> Deleted:
    """Delete a finished job with its events, checkpoints and artifacts, and its control run with it."""
    folders = service.delete_job(session=session, tenant=tenant, job_id=job_id)
    # The files go first: if the store is down the rows stay (503), and a retry deletes both.
    for folder in folders:
        store.delete(folder)
    session.commit()
    return Deleted(id=job_id, object="job")


@router.get("/{job_id}/events", summary="List a job's events", responses=error_responses(401, 404, 422))
def list_events(
    job_id: JobId,
    session: SessionDep,
    tenant: TenantDep,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_EVENT_ID, description="Only events with a greater `id`.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Events per page, 1 to 1000.")] = 100,
) -> JobEventList:
    """List a job's log (status changes, messages, metrics, checkpoints) in order."""
    events, has_more = service.list_events(
        session=session, tenant=tenant, job_id=job_id, after=after, limit=limit
    )
    return list_page(JobEventList, [JobEventPublic.from_row(event) for event in events], has_more=has_more)


@router.get(
    "/{job_id}/events/stream",
    summary="Stream a job's events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "One message per event: `id: <id>`, `event: <type>`, `data: <the event as JSON>`, "
            "and a `: keep-alive` comment every 15 s. Closes after the job's last status change.",
        },
        **error_responses(401, 404, 422),
    },
)
def stream_events(
    job_id: JobId,
    request: Request,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_EVENT_ID, description="Start after this event `id`.")
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="The last event `id` received, sent when reconnecting; wins over a smaller `after`. "
            "A value that is not an event id (such as `null`) is ignored, as the SSE standard has it.",
        ),
    ] = None,
) -> EventSourceResponse:
    """Follow a job's events live, as Server-Sent Events, until the job is finished."""
    service.get_job(session=session, tenant=tenant, job_id=job_id)
    return event_stream(
        request.app.state.stream_source,
        job_id=job_id,
        after=max(after or 0, _event_id(last_event_id)),
        grant=getattr(request.state, "key_grant", None),
        keep_alive_seconds=settings.event_stream_keep_alive_seconds,
        open_streams=request.app.state.metrics.open_streams,
        head_only=bool(request.scope.get(HEAD_REQUEST)),
    )


def _event_id(header: str | None) -> int:
    """The event id a `Last-Event-ID` header names; 0 for a value that is not one."""
    value = (header or "").strip()
    if value.isascii() and value.isdigit() and int(value) <= MAX_EVENT_ID:
        return int(value)
    return 0


@router.get(
    "/{job_id}/checkpoints", summary="List a job's checkpoints", responses=error_responses(401, 404, 422)
)
def list_checkpoints(job_id: JobId, session: SessionDep, tenant: TenantDep) -> CheckpointList:
    """List the training states a job has saved, by step."""
    checkpoints = service.list_checkpoints(session=session, tenant=tenant, job_id=job_id)
    return list_page(CheckpointList, [CheckpointPublic.from_row(checkpoint) for checkpoint in checkpoints])


@router.get("/{job_id}/artifacts", summary="List a job's artifacts", responses=error_responses(401, 404, 422))
def list_artifacts(job_id: JobId, session: SessionDep, tenant: TenantDep) -> ArtifactList:
    """List the files a job produced: the student archive, its report, its curves."""
    artifacts = service.list_artifacts(session=session, tenant=tenant, job_id=job_id)
    return list_page(ArtifactList, [ArtifactPublic.from_row(artifact) for artifact in artifacts])


@router.get(
    "/{job_id}/artifacts/{name}",
    summary="Download an artifact",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The artifact's bytes."},
        307: {
            "description": "With presigned downloads on: the artifact's short-lived URL in the object "
            "store, in `Location`; it needs no credentials."
        },
        **error_responses(401, 404, 422, 500, 503),
    },
)
def download_artifact(
    job_id: JobId,
    name: Annotated[Text, Path(min_length=1, description="The artifact's name, e.g. `student.tar.gz`.")],
    session: SessionDep,
    tenant: TenantDep,
    store: StoreDep,
    settings: SettingsDep,
) -> Response:
    """Stream one artifact of a job, or redirect to a presigned URL of the object store."""
    artifact = service.get_artifact(session=session, tenant=tenant, job_id=job_id, name=name)
    size = store.size(artifact.location)
    if size is None:
        logger.error("artifact %s of job %s is missing at %s", name, job_id, artifact.location)
        raise ApiError(500, f"artifact '{name}' is missing from the store", code="artifact_missing")
    if settings.storage_presigned_downloads:
        url = store.presigned_url(
            artifact.location, seconds=settings.storage_presign_seconds, filename=artifact.name
        )
        if url is not None:
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    headers = {"Content-Length": str(size), "Content-Disposition": _attachment(artifact.name)}
    return StreamingResponse(
        store.iter_bytes(artifact.location), media_type=artifact.media_type, headers=headers
    )


def _attachment(name: str) -> str:
    """A Content-Disposition naming the file, with a plain-ASCII fallback for old clients."""
    fallback = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=utf-8''{quote(name)}"
