"""Webhook metrics read from the database at scrape time: deliveries by event type and outcome."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.metrics.database import DatabaseMetric, QueryMetric, Samples
from app.webhooks.models import DeliveryStatus, WebhookDelivery


def deliveries_by_outcome(session: Session, _now: datetime) -> Samples:
    """Every outcome of every event type delivered at least once, zeros included."""
    counts: dict[str, dict[str, int]] = {}
    for event_type, status, count in session.execute(
        select(WebhookDelivery.event_type, WebhookDelivery.status, func.count()).group_by(
            WebhookDelivery.event_type, WebhookDelivery.status
        )
    ):
        counts.setdefault(event_type, {})[status] = count
    return [
        ((event_type, status.value), by_status.get(status.value, 0))
        for event_type, by_status in sorted(counts.items())
        for status in DeliveryStatus
    ]


def webhook_metrics() -> Sequence[DatabaseMetric]:
    """Every metric of webhook deliveries."""
    return [
        QueryMetric(
            "distillery_webhook_deliveries",
            "Webhook deliveries stored, by event type and outcome (pending, succeeded, failed).",
            ("event_type", "outcome"),
            deliveries_by_outcome,
        )
    ]
