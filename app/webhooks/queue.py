"""Sending a delivery to the webhook workers: only its id travels; the outbox row holds the rest."""

from celery import Celery

from app.core.celery import SEND_WEBHOOK_TASK, celery_app
from app.core.config import get_settings


def publish_delivery(delivery_id: str, *, countdown: float | None = None, app: Celery = celery_app) -> None:
    """Queue one try of a delivery, now or after `countdown` seconds; raises if the broker is unreachable."""
    app.send_task(
        SEND_WEBHOOK_TASK, args=[delivery_id], queue=get_settings().webhook_queue_name, countdown=countdown
    )
