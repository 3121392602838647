"""Recovering jobs the queue lost: orphans whose worker stopped heartbeating, queued jobs whose message
is gone. The reconciler in every worker calls these; row locks and compare-and-sets let them race."""

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import session_scope
from app.jobs.events import append_event
from app.jobs.models import Job, JobStatus
from app.jobs.queue import record_publish, send_job
from app.jobs.schemas import JobError
from app.jobs.transitions import IllegalTransition, transition

logger = logging.getLogger(__name__)


def recover_orphans(*, settings: Settings) -> list[str]:
    """Retry or close jobs whose worker stopped heartbeating; returns the re-queued ids, to publish."""
    cutoff = utcnow() - timedelta(seconds=settings.lease_seconds)
    with session_scope() as session:
        orphans = session.scalars(
            select(Job).where(
                Job.status.in_([JobStatus.RUNNING, JobStatus.CANCELLING]), Job.heartbeat_at < cutoff
            )
        ).all()
        requeued = []
        for job in orphans:
            lost = f"worker {job.worker_id} stopped heartbeating"
            values: dict[str, Any]
            try:
                if job.status == JobStatus.CANCELLING:
                    target, values = JobStatus.CANCELLED, {"finished_at": utcnow()}
                elif job.attempts < settings.max_attempts:
                    target, values = JobStatus.QUEUED, {"queued_at": utcnow(), "worker_id": None}
                else:
                    error = JobError(code="worker_lost", message=lost, type="system", retryable=True)
                    target, values = JobStatus.FAILED, {"finished_at": utcnow(), "error": error.model_dump()}
                transition(
                    session,
                    job_id=job.id,
                    target=target,
                    sources=[JobStatus(job.status)],
                    worker_id=job.worker_id,
                    values=values,
                )
            except IllegalTransition:
                continue  # the worker came back or another reconciler got there first
            append_event(
                session, job_id=job.id, type="status", level="warning", message=f"{lost}; job {target}"
            )
            if target == JobStatus.QUEUED:
                requeued.append(job.id)
        return requeued


def resend_lost(*, held: frozenset[str] | None, settings: Settings, app: Celery, now: datetime) -> list[str]:
    """Send again the queued jobs whose message the broker lost; returns their ids.

    `held` are the ids of the messages the broker holds for the queue, waiting or delivered within
    `requeue_after_seconds`; None when its contents cannot be read.
    """
    with session_scope() as session:
        lost = lost_jobs(session, settings=settings, held=held, now=now)
        return republish(session, job_ids=lost, settings=settings, app=app, now=now) if lost else []


def last_sent() -> ColumnElement[datetime]:
    """When a job was last sent: its last publish, or when it became queued if none was recorded."""
    return func.coalesce(Job.published_at, Job.queued_at)


def lost_jobs(
    session: Session, *, settings: Settings, held: frozenset[str] | None, now: datetime
) -> list[str]:
    """Queued jobs to send again, oldest first, at most `republish_max_per_pass`.

    With the broker's contents known, a job is lost when its last message neither waits on the queue nor
    was delivered within `requeue_after_seconds` (a worker that took it longer ago and has not started
    the job is gone). Without them (brokers that cannot be inspected), a job is lost when its last
    publish is older than `requeue_after_seconds`.
    No job is sent twice within `republish_min_interval_seconds`, which also covers the moments between
    a publish and its record, and between reading the broker and reading the database.
    """
    stale = now - timedelta(seconds=settings.requeue_after_seconds)
    recent = now - timedelta(seconds=settings.republish_min_interval_seconds)
    cutoff = min(recent, stale) if held is None else recent
    rows = session.execute(
        select(Job.id, Job.publish_id)
        # A job no worker can serve, or held back by its tenant's limit, waits for a worker or a job's end.
        .where(Job.status == JobStatus.QUEUED, Job.waiting_for.is_(None), last_sent() < cutoff)
        .order_by(Job.queued_at, Job.id)
    ).all()
    lost = []
    for job_id, publish_id in rows:
        if held is not None and publish_id in held:
            continue  # waiting its turn on the queue, or a worker took it and is starting the job
        lost.append(job_id)
        if len(lost) == settings.republish_max_per_pass:
            break
    return lost


def republish(
    session: Session, *, job_ids: list[str], settings: Settings, app: Celery, now: datetime
) -> list[str]:
    """Send the jobs again under row locks, skipping those another reconciler, worker or publish got to."""
    recent = now - timedelta(seconds=settings.republish_min_interval_seconds)
    jobs = session.scalars(
        select(Job)
        .where(Job.id.in_(job_ids), Job.status == JobStatus.QUEUED, last_sent() < recent)
        .order_by(Job.queued_at, Job.id)
        .with_for_update(skip_locked=True)
    ).all()
    sent = []
    for job in jobs:
        try:
            message_id = send_job(job.id, app=app, accelerator=job.accelerator)
        except Exception:
            logger.exception("could not re-publish job %s; the next pass tries again", job.id)
            break
        record_publish(session, job_id=job.id, message_id=message_id)
        append_event(
            session, job_id=job.id, type="status", level="warning", message="re-sent: its message was lost"
        )
        sent.append(job.id)
    return sent
