"""The database decides which queued job a worker runs: a delivered message is a claim ticket.

`claim_next` (from the Celery pool process, `worker/delivery.py`) takes the best job this worker can
serve now under the rules of `app/jobs/scheduling.py`, in one transaction that takes claims in turn, and
gives it the worker's free device indices. The job's own process then `adopt`s it under its own id.
"""

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import session_scope
from app.jobs.events import append_event
from app.jobs.lifecycle.records import ClaimedJob
from app.jobs.lifecycle.waiting import record_waiting, wake_waiting
from app.jobs.models import Job, JobStatus
from app.jobs.queue import publish_job
from app.jobs.scheduler_state import (
    LIVE,
    free_devices,
    queued_candidates,
    serialise_claims,
    tenant_limits,
    tenant_usage,
)
from app.jobs.scheduling import Candidate, claim_order, claimable
from app.jobs.transitions import IllegalTransition, transition
from app.workers import service as workers_service
from app.workers.records import LiveWorker

logger = logging.getLogger(__name__)


def claim_next(*, node: str, holder: str, ticket: str, settings: Settings) -> str | None:
    """Claim the best queued job worker `node` can run now, for `holder`; returns its id, None for none.

    `ticket` is the job whose message was delivered. When another job is claimed, the ticket's job gets
    a new message, so a queued job never lacks one; when none is, it is left without a message
    (`publish_id` NULL) and its waiting reason recorded, for the reconciler or a job's end to send again.
    """
    now = utcnow()
    with session_scope() as session:
        claimed = _claim(session, node=node, holder=holder, settings=settings, now=now)
        if claimed is None:
            session.execute(
                update(Job)
                .where(Job.id == ticket, Job.status == JobStatus.QUEUED.value)
                .values(publish_id=None, published_at=now)
                .execution_options(synchronize_session=False)
            )
    if claimed is None:
        record_waiting(settings=settings, job_ids=[ticket])
    elif claimed != ticket:
        _send_ticket_again(ticket)
    return claimed


def _claim(session: Session, *, node: str, holder: str, settings: Settings, now: datetime) -> str | None:
    serialise_claims(session)
    worker = workers_service.lock_for_claim(session=session, node=node, now=now)
    if worker is None:
        logger.warning(
            "worker %s is not registered: it claims nothing until its heartbeat registers it", node
        )
        return None
    free = free_devices(session, node=node, devices=worker.devices)
    if not free:
        return None
    candidates = queued_candidates(session, accelerators=["auto", worker.accelerator])
    tenants = {candidate.tenant for candidate in candidates}
    usage = tenant_usage(session, tenants=tenants)
    ordered = claim_order(candidates, usage=usage, now=now, ageing_seconds=settings.scheduler_ageing_seconds)
    limits = tenant_limits(session, tenants=tenants, settings=settings)
    for candidate in claimable(ordered, worker=worker, free_devices=len(free), usage=usage, limits=limits):
        if _lock_queued(session, candidate.id) and _start(
            session, candidate, worker=worker, holder=holder, devices=free[: candidate.devices]
        ):
            return candidate.id
    return None


def _lock_queued(session: Session, job_id: str) -> bool:
    """Lock a queued job's row, skipping it if another transaction (a cancel, a claim) holds it."""
    locked = session.scalar(
        select(Job.id)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED.value)
        .with_for_update(skip_locked=True)
    )
    return locked is not None


def _start(
    session: Session, candidate: Candidate, *, worker: LiveWorker, holder: str, devices: list[int]
) -> bool:
    now = utcnow()
    try:
        transition(
            session,
            job_id=candidate.id,
            target=JobStatus.RUNNING,
            sources=[JobStatus.QUEUED],
            values={
                "worker_id": holder,
                "worker_node": worker.id,
                "assigned_devices": devices,
                "waiting_for": None,
                "heartbeat_at": now,
                "started_at": now,
                "attempts": Job.attempts + 1,
            },
        )
    except IllegalTransition:
        return False
    attempts = session.scalar(select(Job.attempts).where(Job.id == candidate.id))
    kind = "GPU" if worker.accelerator == "cuda" else "CPU slot"
    append_event(
        session,
        job_id=candidate.id,
        type="status",
        message=f"running on {worker.id} (attempt {attempts}), {kind}s {', '.join(map(str, devices))}",
        data={"status": JobStatus.RUNNING.value, "devices": devices, "accelerator": worker.accelerator},
    )
    return True


def _send_ticket_again(job_id: str) -> None:
    try:
        publish_job(job_id)
    except Exception as error:  # its last message is gone: the reconciler's resend of lost jobs covers it
        logger.warning("could not send job %s's message again: %s", job_id, type(error).__name__)


def adopt(*, job_id: str, worker_id: str, holder: str) -> ClaimedJob | None:
    """The job's process takes over the claim `holder` made; None when the claim is no longer held."""
    with session_scope() as session:
        changed = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.worker_id == holder, Job.status.in_(LIVE))
            .values(worker_id=worker_id, heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            logger.info("not running %s: its claim by %s lapsed", job_id, holder)
            return None
        job = session.get_one(Job, job_id, populate_existing=True)
        accelerator = workers_service.accelerator_of(session=session, node=job.worker_node or "")
        devices = tuple(job.assigned_devices or ()) if accelerator == "cuda" else ()
        return ClaimedJob(
            id=job.id, tenant=job.tenant, spec=dict(job.spec), attempts=job.attempts, devices=devices
        )


def wake_after_end(*, settings: Settings) -> None:
    """After a job ends: send the best waiting jobs that have no message, for the room it freed."""
    try:
        wake_waiting(settings=settings)
    except Exception as error:  # the reconciler's resend covers them
        logger.warning("could not wake waiting jobs: %s", type(error).__name__)
