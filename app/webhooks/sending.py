"""Sending a delivery: take it, call the receiver once, record the try, and say when to try again.

Each try is taken with a compare-and-set on the delivery's due time and lease, so two messages for one
delivery (a retry and a sweep, say) make one call. A taken delivery holds a lease (`sending_until`) that
outlasts its try's deadline: the sweep leaves it alone until then, and the endpoint's tries in flight
are the deliveries whose lease runs. A delivery whose endpoint is at its limit, or whose circuit is open,
is postponed without using up a try. Every try is signed anew and carries the delivery's id.
"""

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import session_scope
from app.webhooks.calling import Taken, TryResult, call_receiver
from app.webhooks.endpoint_gate import lease_seconds, record_outcome, wait_before_try
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)


def backoff_seconds(tries: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """The wait after the `tries`-th failed try: `base * 2**(tries-1)`, capped, half of it random."""
    delay = min(cap, base * 2 ** (tries - 1))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


def take(delivery_id: str, *, settings: Settings, now: datetime) -> Taken | float | None:
    """Hold a due pending delivery for one try; the seconds it was postponed by when its endpoint takes
    no try now; None when it is not due, finished, held or gone."""
    with session_scope() as session:
        endpoint_id = session.scalar(select(WebhookDelivery.endpoint_id).where(_takeable(delivery_id, now)))
        if endpoint_id is None:
            return None
        # Takes for one endpoint queue on its row, so its limit holds across senders and processes.
        endpoint = session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
        if endpoint is None:
            return None
        wait = wait_before_try(session, endpoint, now=now, settings=settings)
        if wait is not None:
            postponed = _claim(session, delivery_id, now, next_attempt_at=now + timedelta(seconds=wait))
            return wait if postponed is not None else None
        lease_end = now + timedelta(seconds=lease_seconds(settings))
        payload = _claim(session, delivery_id, now, next_attempt_at=lease_end, sending_until=lease_end)
        if payload is None:
            return None
        return Taken(
            delivery_id=delivery_id,
            endpoint_id=endpoint.id,
            url=endpoint.url,
            secret=endpoint.secret,
            payload=payload,
        )


def _takeable(delivery_id: str, now: datetime) -> ColumnElement[bool]:
    """The delivery is pending, due, and held by no try in flight."""
    return and_(
        WebhookDelivery.id == delivery_id,
        WebhookDelivery.status == DeliveryStatus.PENDING,
        WebhookDelivery.next_attempt_at <= now,
        _not_in_flight(now),
    )


def _not_in_flight(now: datetime) -> ColumnElement[bool]:
    return or_(WebhookDelivery.sending_until.is_(None), WebhookDelivery.sending_until <= now)


def _claim(session: Session, delivery_id: str, now: datetime, **values: Any) -> dict[str, Any] | None:
    """Set `values` on the delivery if it is still takeable (a compare-and-set); returns its payload."""
    payload: dict[str, Any] | None = session.scalar(
        update(WebhookDelivery)
        .where(_takeable(delivery_id, now))
        .values(**values)
        .returning(WebhookDelivery.payload)
        .execution_options(synchronize_session=False)
    )
    return payload


def record_try(taken: Taken, result: TryResult, *, settings: Settings) -> float | None:
    """Log the try, end its lease and tell the endpoint's circuit; returns the seconds until the
    delivery's next try, None when it is done."""
    now = utcnow()
    with session_scope() as session:
        # The endpoint's row first, as in `take`: one order of locks everywhere cannot deadlock.
        endpoint = session.get(WebhookEndpoint, taken.endpoint_id, with_for_update=True)
        delivery = session.get(WebhookDelivery, taken.delivery_id, with_for_update=True)
        if endpoint is None or delivery is None:
            return None  # its endpoint was deleted meanwhile
        record_outcome(endpoint, succeeded=result.succeeded, now=now, settings=settings)
        delivery.sending_until = None
        delivery.attempts += 1
        delivery.tries += 1
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                number=delivery.attempts,
                created_at=now,
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                error=result.error,
                response_excerpt=result.excerpt,
            )
        )
        if result.succeeded or delivery.tries >= settings.webhook_max_attempts:
            delivery.status = DeliveryStatus.SUCCEEDED if result.succeeded else DeliveryStatus.FAILED
            delivery.next_attempt_at, delivery.finished_at = None, now
            return None
        delay = backoff_seconds(
            delivery.tries, base=settings.webhook_backoff_seconds, cap=settings.webhook_backoff_max_seconds
        )
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        return delay


def send_delivery(delivery_id: str, *, settings: Settings) -> float | None:
    """One try of a delivery if it is due; returns the seconds until the next try (or until its endpoint
    may take it), None when none is due."""
    taken = take(delivery_id, settings=settings, now=utcnow())
    if taken is None or isinstance(taken, float):
        return taken
    result = call_receiver(taken, settings=settings)
    if result.succeeded:
        logger.info("delivered %s (%d ms)", delivery_id, result.latency_ms)
    else:
        logger.info("delivery %s failed: %s", delivery_id, result.error or f"HTTP {result.status_code}")
    return record_try(taken, result, settings=settings)


def due_unsent(*, settings: Settings, now: datetime, limit: int = 100) -> list[str]:
    """Pending deliveries due for longer than a sweep interval, which no message brought to a sender.
    A delivery whose try is in flight is not one of them until its lease has lapsed.

    Their due time is moved to now, so the next sweep leaves them to the message this one sends.
    """
    cutoff = now - timedelta(seconds=settings.webhook_sweep_seconds)
    with session_scope() as session:
        ids = list(
            session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= cutoff,
                    _not_in_flight(now),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids))
                .values(next_attempt_at=now)
                .execution_options(synchronize_session=False)
            )
    return ids
