"""Appending to a job's ordered event log."""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.jobs.models import JobEvent


def append_event(
    session: Session,
    *,
    job_id: str,
    message: str = "",
    type: str = "message",
    level: str = "info",
    data: dict[str, Any] | None = None,
) -> JobEvent:
    """Add the next event of a job; `seq` is unique per job, so a concurrent writer makes us retry."""
    for _ in range(5):
        last = session.scalar(select(func.max(JobEvent.seq)).where(JobEvent.job_id == job_id)) or 0
        event = JobEvent(job_id=job_id, seq=last + 1, type=type, level=level, message=message, data=data)
        try:
            with session.begin_nested():
                session.add(event)
            return event
        except IntegrityError:
            continue
    raise RuntimeError(f"could not append an event to job {job_id}")
