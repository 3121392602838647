"""Recovers jobs the queue lost: re-publishes queued jobs whose message is gone, retries orphaned ones."""

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError as BrokerUnreachable
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import is_database_unreachable, session_scope
from app.core.outage import OutageLog
from app.jobs.events import append_event
from app.jobs.models import Job, JobStatus
from app.jobs.queue import publish_job, record_publish, send_job
from app.jobs.schemas import JobError
from app.jobs.transitions import IllegalTransition, transition
from worker.broker_contents import HeldMessages, held_messages
from worker.celery_app import celery_app

logger = logging.getLogger(__name__)


def last_sent() -> ColumnElement[datetime]:
    """When a job was last sent: its last publish, or when it became queued if none was recorded."""
    return func.coalesce(Job.published_at, Job.queued_at)


def lost_jobs(session: Session, *, settings: Settings, held: HeldMessages | None, now: datetime) -> list[str]:
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
        .where(Job.status == JobStatus.QUEUED, last_sent() < cutoff)
        .order_by(Job.queued_at, Job.id)
    ).all()
    lost = []
    for job_id, publish_id in rows:
        if held is not None and publish_id in held.waiting:
            continue  # waiting its turn on the queue
        if held is not None and publish_id in held.delivered:
            continue  # a worker took it and is starting the job
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
            message_id = send_job(job.id, app=app)
        except Exception:
            logger.exception("could not re-publish job %s; the next pass tries again", job.id)
            break
        record_publish(session, job_id=job.id, message_id=message_id)
        append_event(
            session, job_id=job.id, type="status", level="warning", message="re-sent: its message was lost"
        )
        sent.append(job.id)
    return sent


def recover_orphans(session: Session, *, settings: Settings) -> list[str]:
    """Retry or close jobs whose worker stopped heartbeating; returns the re-queued ids, to publish."""
    cutoff = utcnow() - timedelta(seconds=settings.lease_seconds)
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
        append_event(session, job_id=job.id, type="status", level="warning", message=f"{lost}; job {target}")
        if target == JobStatus.QUEUED:
            requeued.append(job.id)
    return requeued


def reconcile_once(settings: Settings, *, app: Celery = celery_app) -> list[str]:
    """One pass: re-queue orphans and send them, then re-send lost queued jobs; returns the ids sent."""
    with session_scope() as session:
        orphans = recover_orphans(session, settings=settings)
    sent = []
    for job_id in orphans:
        try:
            publish_job(job_id, app=app)
            sent.append(job_id)
        except Exception as error:
            # It stays queued with no message, so a later pass sends it once the broker is back.
            logger.warning("could not publish re-queued job %s: %s", job_id, type(error).__name__)
    # Read the broker before the database: a job published in between is younger than the minimum interval.
    held = held_messages(
        app, queue=settings.queue_name, delivered_within_seconds=settings.requeue_after_seconds
    )
    now = utcnow()
    with session_scope() as session:
        lost = lost_jobs(session, settings=settings, held=held, now=now)
        if lost:
            sent += republish(session, job_ids=lost, settings=settings, app=app, now=now)
    if sent:
        logger.info("re-published %d job(s): %s", len(sent), ", ".join(sent))
    return sent


class Reconciler:
    """A daemon thread running `reconcile_once` every `reconcile_seconds`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="distillery-reconciler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _loop(self) -> None:
        outage = OutageLog(logger, what="the reconciler's database or broker")
        while True:
            try:
                reconcile_once(self.settings)
                outage.answered()
            except Exception as error:  # keep the thread alive through a database or broker outage
                if is_database_unreachable(error) or isinstance(error, BrokerUnreachable):
                    outage.failed(error)  # one warning per outage, not a traceback every pass
                else:
                    logger.exception("reconcile pass failed")
            if self._stopped.wait(self.settings.reconcile_seconds):
                return
