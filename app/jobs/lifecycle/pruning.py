"""Deleting the events of jobs that ended long ago, so the events table stays bounded (docs/deploy.md)."""

from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import session_scope
from app.jobs.models import Job, JobEvent

# A pass deletes the events of this many jobs at most, so one transaction stays short even after a long
# backlog; the next reconcile pass takes the next ones.
JOBS_PER_PASS = 500


def prune_events(*, settings: Settings, now: datetime | None = None, jobs: int = JOBS_PER_PASS) -> int:
    """Delete the events of up to `jobs` jobs that ended over `events_retention_days` ago; returns the
    events deleted. The job rows stay: a job's status, metrics, checkpoints and artifacts are kept."""
    if settings.events_retention_days is None:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=settings.events_retention_days)
    ended = (
        select(Job.id).where(Job.finished_at < cutoff, exists().where(JobEvent.job_id == Job.id)).limit(jobs)
    )
    with session_scope() as session:
        job_ids = list(session.scalars(ended))
        if not job_ids:
            return 0
        result = session.execute(
            delete(JobEvent).where(JobEvent.job_id.in_(job_ids)).execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
