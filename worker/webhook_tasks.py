"""The webhook task, and the sweep that re-sends due deliveries nobody sent, run by the webhook worker."""

import logging

from app.core.base import utcnow
from app.core.config import Settings, get_settings
from app.webhooks.queue import publish_delivery
from app.webhooks.sending import due_unsent, send_delivery
from worker.periodic import PeriodicThread, run_while_worker_runs
from worker.webhook_app import SEND_WEBHOOK_TASK, app

logger = logging.getLogger(__name__)


# Acked on receipt: the outbox row, not the message, says what is left to send (see `sweep_once`).
@app.task(name=SEND_WEBHOOK_TASK, acks_late=False, ignore_result=True)
def send_webhook_task(delivery_id: str) -> None:
    """Make one try of a delivery; after a failure, queue the next try after its backoff."""
    delay = send_delivery(delivery_id, settings=get_settings())
    if delay is None:
        return
    try:
        publish_delivery(delivery_id, countdown=delay, app=app)
    except Exception as error:
        logger.warning("could not queue the next try of %s (%s); the sweep will", delivery_id, error)


def sweep_once(settings: Settings) -> list[str]:
    """Queue the deliveries due for longer than a sweep interval: those whose message was lost, or that
    were committed by a process that died before it queued them."""
    delivery_ids = due_unsent(settings=settings, now=utcnow())
    for delivery_id in delivery_ids:
        publish_delivery(delivery_id, app=app)
    if delivery_ids:
        logger.info("swept %d unsent webhook deliveries", len(delivery_ids))
    return delivery_ids


def sweeper(settings: Settings) -> PeriodicThread:
    """A thread running `sweep_once` every `webhook_sweep_seconds`."""
    return PeriodicThread("webhook-sweep", settings.webhook_sweep_seconds, lambda: sweep_once(settings))


run_while_worker_runs(lambda: sweeper(get_settings()))
