"""The outbox: a job's event becomes delivery rows in the transaction that records it, sent after commit.

A crash between the commit and the send loses nothing: the webhook worker's sweep sends every delivery
that is due and that nobody took.
"""

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, SessionTransaction

from app.api.timestamps import unix_seconds
from app.core.base import new_id, utcnow
from app.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint
from app.webhooks.queue import publish_delivery

logger = logging.getLogger(__name__)

# Ids of the deliveries a session wrote, kept in `Session.info` until its transaction ends.
UNSENT_KEY = "webhook_deliveries_unsent"
# A job's statuses that are events, by value; `cancelling` is none (its end, `cancelled`, is).
STATUS_EVENTS = {
    "queued": EventType.JOB_QUEUED,
    "running": EventType.JOB_RUNNING,
    "succeeded": EventType.JOB_SUCCEEDED,
    "failed": EventType.JOB_FAILED,
    "cancelled": EventType.JOB_CANCELLED,
}
CONTROL_FIELDS = ("job_id", "status", "mode", "split", "gain", "verdict")


@dataclass(frozen=True)
class JobChange:
    """What a job's event tells its receivers: the job as it stands in the caller's transaction.

    `parent_id` names a control run's parent; `control` is a job's `result.control`, once its control
    has ended.
    """

    job_id: str
    tenant: str
    status: str
    parent_id: str | None = None
    control: dict[str, Any] | None = None

    def related_jobs(self) -> dict[str, Any]:
        """A control's parent, or a job's control with its gain once both have ended."""
        if self.parent_id is not None:
            return {"parent_id": self.parent_id}
        if self.control is None:
            return {}
        return {"control": {key: self.control[key] for key in CONTROL_FIELDS if key in self.control}}


def record_status_change(session: Session, change: JobChange) -> list[str]:
    """Deliveries of a job's new status, if that status is an event; returns their ids."""
    event_type = STATUS_EVENTS.get(change.status)
    if event_type is None:
        return []
    return record_job_event(session, change, event_type)


def record_job_event(
    session: Session, change: JobChange, event_type: EventType, data: dict[str, Any] | None = None
) -> list[str]:
    """One delivery per endpoint of the job's tenant that takes `event_type`, in the caller's transaction.

    The payload is `{id, type, created_at, data: {job_id, status, **data}}`; clients re-fetch the job. A
    control run's data names its `parent_id`; a job with a control carries the control's outcome and gain.
    Returns the ids of the deliveries.
    """
    endpoints = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.tenant == change.tenant)
    ).all()
    now = utcnow()
    event_data = {"job_id": change.job_id, "status": change.status, **change.related_jobs(), **(data or {})}
    deliveries = []
    for endpoint in endpoints:
        if endpoint.events is not None and event_type not in endpoint.events:
            continue
        delivery_id = new_id("evt")
        payload = {
            "id": delivery_id,
            "type": event_type.value,
            "created_at": unix_seconds(now),
            "data": dict(event_data),
        }
        deliveries.append(
            WebhookDelivery(
                id=delivery_id,
                endpoint_id=endpoint.id,
                tenant=change.tenant,
                event_type=event_type.value,
                job_id=change.job_id,
                payload=payload,
                next_attempt_at=now,
                created_at=now,
            )
        )
    delivery_ids = [delivery.id for delivery in deliveries]
    if deliveries:
        session.add_all(deliveries)
        session.flush()
        send_after_commit(session, delivery_ids)
    return delivery_ids


def send_after_commit(session: Session, delivery_ids: list[str]) -> None:
    """Queue the deliveries once the session's transaction commits; forget them if it rolls back."""
    session.info.setdefault(UNSENT_KEY, []).extend(delivery_ids)


@event.listens_for(Session, "after_commit")
def _send_committed(session: Session) -> None:
    """Publish the deliveries the committed transaction wrote; a failure is left to the sweep."""
    delivery_ids = session.info.pop(UNSENT_KEY, None)
    for delivery_id in delivery_ids or []:
        try:
            publish_delivery(delivery_id)
        except Exception as error:
            # The rows are committed: the webhook worker's sweep sends them once the broker answers.
            logger.warning("could not queue webhook deliveries (%s); the sweep will", type(error).__name__)
            return


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """A rolled-back transaction wrote no deliveries."""
    if previous_transaction.parent is None:
        session.info.pop(UNSENT_KEY, None)
