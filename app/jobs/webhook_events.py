"""A job's changes handed to the webhooks outbox, as plain records read in the caller's transaction."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs.models import Job, JobStatus
from app.webhooks import outbox
from app.webhooks.outbox import EventType, JobChange

__all__ = ["EventType", "job_change", "record_job_event", "record_status_change"]


def job_change(session: Session, job_id: str) -> JobChange | None:
    """The job as its receivers see it now (after this transaction's own writes); None if it is gone."""
    row = session.execute(
        select(Job.tenant, Job.status, Job.parent_id, Job.result).where(Job.id == job_id)
    ).one_or_none()
    if row is None:
        return None
    control = row.result.get("control") if isinstance(row.result, dict) else None
    return JobChange(
        job_id=job_id,
        tenant=row.tenant,
        status=row.status,
        parent_id=row.parent_id,
        control=control if isinstance(control, dict) else None,
    )


def record_status_change(session: Session, *, job_id: str, status: JobStatus) -> list[str]:
    """Deliveries of a job's new status (`cancelling` is no event, its end is); returns their ids."""
    if status not in outbox.STATUS_EVENTS:
        return []
    change = job_change(session, job_id)
    return [] if change is None else outbox.record_status_change(session, change)


def record_job_event(
    session: Session, *, job_id: str, event_type: EventType, data: dict[str, Any] | None = None
) -> list[str]:
    """One delivery per receiver of the job's tenant that takes `event_type`; returns their ids."""
    change = job_change(session, job_id)
    return [] if change is None else outbox.record_job_event(session, change, event_type, data)
