"""The webhook task, and the sweep that re-sends due deliveries nobody sent, run by the webhook worker."""

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from kombu.exceptions import OperationalError as BrokerUnreachable

from app.core.base import utcnow
from app.core.config import Settings, get_settings
from app.core.db import is_database_unreachable
from app.core.outage import OutageLog
from app.webhooks.queue import publish_delivery
from app.webhooks.sending import due_unsent, send_delivery
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


class Sweeper:
    """A daemon thread running `sweep_once` every `webhook_sweep_seconds`, from the worker's start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="distillery-webhook-sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _loop(self) -> None:
        outage = OutageLog(logger, what="the webhook sweep's database or broker")
        while True:
            try:
                sweep_once(self.settings)
                outage.answered()
            except Exception as error:  # keep the thread alive through a database or broker outage
                if is_database_unreachable(error) or isinstance(error, BrokerUnreachable):
                    outage.failed(error)
                else:
                    logger.exception("webhook sweep failed")
            if self._stopped.wait(self.settings.webhook_sweep_seconds):
                return


_sweeper: Sweeper | None = None


@worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    global _sweeper
    _sweeper = Sweeper(get_settings())
    _sweeper.start()


@worker_shutdown.connect
def _stop_sweeper(**_: Any) -> None:
    if _sweeper is not None:
        _sweeper.stop()
