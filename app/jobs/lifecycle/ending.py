"""How an attempt of a job ends: its final status, or back to the queue after a transient failure."""

import logging
from typing import Any

from app.core.base import utcnow
from app.core.config import get_settings
from app.core.db import session_scope
from app.jobs.events import append_event
from app.jobs.lifecycle.claiming import wake_after_end
from app.jobs.models import JobStatus
from app.jobs.schemas import JobError
from app.jobs.transitions import IllegalTransition, transition

logger = logging.getLogger(__name__)


def finish(
    *,
    job_id: str,
    worker_id: str,
    status: JobStatus,
    result: dict[str, Any] | None = None,
    error: JobError | None = None,
    detail: str | None = None,
) -> bool:
    """End the worker's job in `status` (a compare-and-set); False when it was no longer the worker's to end.

    A job cancelled too late may still end succeeded: `cancelling` allows it. Its end wakes waiting jobs.
    """
    ended = _finish(
        job_id=job_id, worker_id=worker_id, status=status, result=result, error=error, detail=detail
    )
    if ended:
        wake_after_end(settings=get_settings())
    return ended


def _finish(
    *,
    job_id: str,
    worker_id: str,
    status: JobStatus,
    result: dict[str, Any] | None,
    error: JobError | None,
    detail: str | None,
) -> bool:
    with session_scope() as session:
        try:
            transition(
                session,
                job_id=job_id,
                target=status,
                worker_id=worker_id,
                values=_end_values(status, result, error),
            )
        except IllegalTransition as refused:
            logger.warning("could not record %s for %s: it is %s", status, job_id, refused.current)
            return False
        append_event(
            session,
            job_id=job_id,
            type="status",
            level="error" if error else "info",
            message=f"job {status}" + (f": {error.message}" if error else ""),
            data={"status": status.value, **({"detail": detail} if detail else {})},
        )
        return True


def _end_values(status: JobStatus, result: dict[str, Any] | None, error: JobError | None) -> dict[str, Any]:
    """The columns a job's end writes; a cancel keeps the reason it was asked with (a sweep's `pruned`)."""
    values: dict[str, Any] = {"finished_at": utcnow(), "result": result}
    if error is not None or status != JobStatus.CANCELLED:
        values["error"] = error.model_dump() if error is not None else None
    return values


def requeue(*, job_id: str, worker_id: str, attempt: int, max_attempts: int, error: JobError) -> str | None:
    """Queue the worker's running job for another attempt after a transient `error`; returns the job's
    status now: `queued`, or the status that refused it (`cancelling`, ...), None when it is gone."""
    status = _requeue(
        job_id=job_id, worker_id=worker_id, attempt=attempt, max_attempts=max_attempts, error=error
    )
    wake_after_end(settings=get_settings())
    return status


def _requeue(*, job_id: str, worker_id: str, attempt: int, max_attempts: int, error: JobError) -> str | None:
    with session_scope() as session:
        try:
            transition(
                session,
                job_id=job_id,
                target=JobStatus.QUEUED,
                sources=[JobStatus.RUNNING],
                worker_id=worker_id,
                values={"queued_at": utcnow(), "worker_id": None},
            )
        except IllegalTransition as refused:
            return refused.current
        append_event(
            session,
            job_id=job_id,
            type="status",
            level="warning",
            message=(
                f"attempt {attempt} hit a transient error ({error.message}); "
                f"queued again for attempt {attempt + 1} of {max_attempts}"
            ),
            data={"error": error.model_dump()},
        )
        return JobStatus.QUEUED.value
