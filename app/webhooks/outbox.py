"""The outbox: a job's event becomes delivery rows in the transaction that records it, sent after commit.

A crash between the commit and the send loses nothing: the webhook worker's sweep sends every delivery
that is due and that nobody took.
"""

import logging
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, SessionTransaction

from app.api.timestamps import unix_seconds
from app.core.base import new_id, utcnow
from app.jobs.models import Job, JobStatus
from app.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint
from app.webhooks.queue import publish_delivery

logger = logging.getLogger(__name__)

# Ids of the deliveries a session wrote, kept in `Session.info` until its transaction ends.
UNSENT_KEY = "webhook_deliveries_unsent"
STATUS_EVENTS = {
    JobStatus.QUEUED: EventType.JOB_QUEUED,
    JobStatus.RUNNING: EventType.JOB_RUNNING,
    JobStatus.SUCCEEDED: EventType.JOB_SUCCEEDED,
    JobStatus.FAILED: EventType.JOB_FAILED,
    JobStatus.CANCELLED: EventType.JOB_CANCELLED,
}


def record_status_change(session: Session, *, job_id: str, status: JobStatus) -> list[WebhookDelivery]:
    """Deliveries of a job's new status; `cancelling` is no event (its end, `cancelled`, is)."""
    event_type = STATUS_EVENTS.get(status)
    if event_type is None:
        return []
    return record_job_event(session, job_id=job_id, event_type=event_type)


def record_job_event(
    session: Session, *, job_id: str, event_type: EventType, data: dict[str, Any] | None = None
) -> list[WebhookDelivery]:
    """One delivery per endpoint of the job's tenant that takes `event_type`, in the caller's transaction.

    The payload is `{id, type, created_at, data: {job_id, status, **data}}`; clients re-fetch the job. A
    control run's data names its `parent_id`; a job with a control carries the control's outcome and gain.
    """
    rows = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events, Job.tenant, Job.status, Job.parent_id, Job.result)
        .join(Job, Job.tenant == WebhookEndpoint.tenant)
        .where(Job.id == job_id)
    ).all()
    now = utcnow()
    deliveries = []
    for row in rows:
        if row.events is not None and event_type not in row.events:
            continue
        delivery_id = new_id("evt")
        payload = {
            "id": delivery_id,
            "type": event_type.value,
            "created_at": unix_seconds(now),
            "data": {"job_id": job_id, "status": row.status, **related_jobs(row), **(data or {})},
        }
        deliveries.append(
            WebhookDelivery(
                id=delivery_id,
                endpoint_id=row.id,
                tenant=row.tenant,
                event_type=event_type.value,
                job_id=job_id,
                payload=payload,
                next_attempt_at=now,
                created_at=now,
            )
        )
    if deliveries:
        session.add_all(deliveries)
        session.flush()
        send_after_commit(session, [delivery.id for delivery in deliveries])
    return deliveries


def related_jobs(row: Any) -> dict[str, Any]:
    """A control's parent, or a job's control with its gain once both have ended."""
    if row.parent_id is not None:
        return {"parent_id": row.parent_id}
    control = row.result.get("control") if isinstance(row.result, dict) else None
    if not isinstance(control, dict):
        return {}
    return {"control": {key: control[key] for key in ("job_id", "status", "split", "gain") if key in control}}


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
