"""Recovers jobs the queue lost: re-publishes queued jobs whose message is gone, retries orphaned ones."""

import logging

from celery import Celery

from app.core.base import utcnow
from app.core.config import Settings
from app.jobs.lifecycle import publish_job, recover_orphans, resend_lost
from worker.broker_contents import held_messages
from worker.celery_app import celery_app
from worker.periodic import PeriodicThread

logger = logging.getLogger(__name__)


def reconcile_once(settings: Settings, *, app: Celery = celery_app) -> list[str]:
    """One pass: re-queue orphans and send them, then re-send lost queued jobs; returns the ids sent."""
    sent = []
    for job_id in recover_orphans(settings=settings):
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
    sent += resend_lost(
        held=None if held is None else held.waiting | held.delivered, settings=settings, app=app, now=utcnow()
    )
    if sent:
        logger.info("re-published %d job(s): %s", len(sent), ", ".join(sent))
    return sent


def reconciler(settings: Settings) -> PeriodicThread:
    """A thread running `reconcile_once` every `reconcile_seconds`."""
    return PeriodicThread("reconciler", settings.reconcile_seconds, lambda: reconcile_once(settings))
