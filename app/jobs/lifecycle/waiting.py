"""Why a queued job waits (`waiting_for`), and waking waiting jobs that have no message once room frees."""

import logging

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import session_scope
from app.jobs.events import append_event
from app.jobs.models import Job, JobStatus
from app.jobs.queue import record_publish, send_job
from app.jobs.scheduler_state import CANDIDATE_COLUMNS, tenant_limits, tenant_usage
from app.jobs.scheduling import Candidate, Limits, Usage, WaitingFor, waiting_reason
from app.workers import service as workers_service

logger = logging.getLogger(__name__)
QUEUED = JobStatus.QUEUED.value


def record_waiting(*, settings: Settings, job_ids: list[str] | None = None) -> dict[str, str | None]:
    """Work out why each queued job (or each of `job_ids`) waits, from the live workers and the tenants'
    usage; store and log each change. Returns the changed jobs' new reasons."""
    now = utcnow()
    with session_scope() as session:
        workers = workers_service.live_workers(session=session, settings=settings, now=now)
        statement = select(*CANDIDATE_COLUMNS, Job.waiting_for).where(Job.status == QUEUED)
        if job_ids is not None:
            statement = statement.where(Job.id.in_(job_ids))
        rows = session.execute(statement).all()
        tenants = {row.tenant for row in rows}
        usage = tenant_usage(session, tenants=tenants)
        limits = tenant_limits(session, tenants=tenants, settings=settings)
        changed: dict[str, str | None] = {}
        for row in rows:
            fields = row._asdict()
            old = fields.pop("waiting_for")
            candidate = Candidate(**fields)
            reason = waiting_reason(
                candidate,
                workers=workers,
                usage=usage.get(candidate.tenant, Usage()),
                limits=limits.get(candidate.tenant, Limits()),
            )
            if reason != old and _store(session, candidate, old=old, new=reason):
                changed[candidate.id] = reason
        return changed


def _store(session: Session, job: Candidate, *, old: str | None, new: WaitingFor | None) -> bool:
    """Compare-and-set the reason, so that racing reconcilers log each change once."""
    was = Job.waiting_for.is_(None) if old is None else Job.waiting_for == old
    stored = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == QUEUED, was)
        .values(waiting_for=new)
        .execution_options(synchronize_session=False)
    )
    if stored.rowcount != 1:  # type: ignore[attr-defined]
        return False
    append_event(
        session,
        job_id=job.id,
        type="status",
        level="warning" if new == "resources" else "info",
        message=_explained(job, old=old, new=new),
        data={"status": QUEUED, "waiting_for": new},
    )
    return True


def _explained(job: Candidate, *, old: str | None, new: WaitingFor | None) -> str:
    if new == "resources":
        memory = f" with {job.min_memory_gb:g} GB each" if job.min_memory_gb is not None else ""
        kind = "" if job.accelerator == "auto" else f"{job.accelerator} "
        return f"waiting for resources: no live worker has {job.devices} {kind}device(s){memory}"
    if new == "quota":
        return "waiting for quota: the tenant runs as many jobs or devices as its limit allows"
    return f"no longer waiting for {old}: queued for the next free worker"


def wake_waiting(*, settings: Settings) -> list[str]:
    """Send the best queued jobs that have no message and may run now; at most `scheduler_wake_jobs`."""
    with session_scope() as session:
        jobs = session.scalars(
            select(Job)
            .where(
                Job.status == QUEUED,
                Job.publish_id.is_(None),
                or_(Job.waiting_for.is_(None), Job.waiting_for == "quota"),
            )
            .order_by(Job.priority_rank.desc(), Job.queued_at, Job.id)
            .limit(settings.scheduler_wake_jobs)
            .with_for_update(skip_locked=True)
        ).all()
        woken = []
        for job in jobs:
            record_publish(session, job_id=job.id, message_id=send_job(job.id, accelerator=job.accelerator))
            woken.append(job.id)
        if woken:
            logger.info("woke %d waiting job(s): %s", len(woken), ", ".join(woken))
        return woken
