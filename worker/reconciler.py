"""Recovers jobs the queue lost: re-publishes untaken queued jobs and retries jobs whose worker died."""

import logging
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import session_scope
from app.jobs.events import append_event
from app.jobs.models import Job, JobStatus
from app.jobs.queue import publish_job
from app.jobs.transitions import IllegalTransition, transition

logger = logging.getLogger(__name__)


def requeue_untaken(session: Session, *, settings: Settings) -> list[str]:
    """Mark queued jobs not taken for a while as re-sent; returns their ids, to publish after commit."""
    cutoff = utcnow() - timedelta(seconds=settings.requeue_after_seconds)
    jobs = session.scalars(
        select(Job)
        .where(Job.status == JobStatus.QUEUED, Job.queued_at < cutoff)
        .with_for_update(skip_locked=True)
    ).all()
    for job in jobs:
        job.queued_at = utcnow()
    return [job.id for job in jobs]


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
                error = {"code": "worker_lost", "message": lost, "param": None, "type": "system"}
                target, values = JobStatus.FAILED, {"finished_at": utcnow(), "error": error}
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


def reconcile_once(settings: Settings) -> list[str]:
    """One pass over the database; publishes the jobs to send again and returns their ids."""
    with session_scope() as session:
        to_publish = recover_orphans(session, settings=settings)
    with session_scope() as session:
        to_publish += requeue_untaken(session, settings=settings)
    for job_id in to_publish:
        publish_job(job_id)
    if to_publish:
        logger.info("re-published %d job(s): %s", len(to_publish), ", ".join(to_publish))
    return to_publish


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
        while True:
            try:
                reconcile_once(self.settings)
            except Exception:  # keep the thread alive through a database or broker outage
                logger.exception("reconcile pass failed")
            if self._stopped.wait(self.settings.reconcile_seconds):
                return
