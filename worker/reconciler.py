"""Recovers jobs the queue lost and says why queued jobs wait: re-publishes queued jobs whose message is
gone, retries orphaned ones, forgets workers that stopped heartbeating, records each job's `waiting_for`,
and deletes the events of jobs that ended before the retention period (`events_retention_days`)."""

import logging

from celery import Celery

from app.core.base import utcnow
from app.core.celery import job_queues
from app.core.config import Settings
from app.jobs.lifecycle import publish_job, record_waiting, recover_orphans, resend_lost
from app.sweeps.lifecycle import advance_all as advance_sweeps
from app.workers.registry import forget_gone
from worker.broker_contents import held_messages
from worker.celery_app import celery_app
from worker.event_pruning import EventPruning, event_pruning
from worker.periodic import PeriodicThread

logger = logging.getLogger(__name__)


def reconcile_once(
    settings: Settings, *, app: Celery = celery_app, pruning: EventPruning = event_pruning
) -> list[str]:
    """One pass: re-queue orphans and send them, update why jobs wait, re-send lost queued jobs, prune old
    events; returns the ids sent."""
    sent = []
    for job_id in recover_orphans(settings=settings):
        try:
            publish_job(job_id, app=app)
            sent.append(job_id)
        except Exception as error:
            # It stays queued with no message, so a later pass sends it once the broker is back.
            logger.warning("could not publish re-queued job %s: %s", job_id, type(error).__name__)
    forget_gone(settings=settings)
    # Before the resend: a job that a worker can serve again (`waiting_for` cleared) is sent in this pass.
    record_waiting(settings=settings)
    # Read the broker before the database: a job published in between is younger than the minimum interval.
    held = held_tickets(app, settings=settings)
    sent += resend_lost(held=held, settings=settings, app=app, now=utcnow())
    if sent:
        logger.info("re-published %d job(s): %s", len(sent), ", ".join(sent))
    pruning.run(settings)
    # Sweeps whose jobs ended while no one advanced them (a worker or the API restarted) move on here.
    advance_sweeps(settings=settings)
    return sent


def held_tickets(app: Celery, *, settings: Settings) -> frozenset[str] | None:
    """The ids of the messages every job queue holds; None when the broker cannot be inspected."""
    held: set[str] = set()
    for queue in job_queues(settings.queue_name):
        messages = held_messages(app, queue=queue, delivered_within_seconds=settings.requeue_after_seconds)
        if messages is None:
            return None
        held |= messages.waiting | messages.delivered
    return frozenset(held)


def reconciler(settings: Settings) -> PeriodicThread:
    """A thread running `reconcile_once` every `reconcile_seconds`."""
    return PeriodicThread("reconciler", settings.reconcile_seconds, lambda: reconcile_once(settings))
