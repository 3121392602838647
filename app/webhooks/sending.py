"""Sending a delivery: take it, call the receiver once, record the try, and say when to try again.

Each try is taken with a compare-and-set on the delivery's due time, so two messages for one delivery
(a retry and a sweep, say) make one call. Every try is signed anew and carries the delivery's id.
"""

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import session_scope
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.signing import signed_headers
from app.webhooks.url_safety import UnsafeUrl, pinned_target

logger = logging.getLogger(__name__)
USER_AGENT = "Distillery-Webhooks/1"
# What is kept of a receiver's answer: its first bytes, never the whole body.
EXCERPT_BYTES = 1024
MAX_ERROR_CHARS = 500
# A try holds its delivery for this many timeouts (connect, send, read and slack): a sender that dies
# mid-try leaves it due again once the hold lapses.
HOLD_TIMEOUTS = 4


@dataclass(frozen=True)
class Taken:
    """A delivery taken for one try: what to send, and where."""

    delivery_id: str
    url: str
    secret: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class TryResult:
    """How one call went."""

    status_code: int | None
    latency_ms: int
    error: str | None = None
    excerpt: str | None = None

    @property
    def succeeded(self) -> bool:
        """A 2xx answer; a redirect is not followed, and counts as a failure."""
        return self.status_code is not None and 200 <= self.status_code < 300


def backoff_seconds(tries: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """The wait after the `tries`-th failed try: `base * 2**(tries-1)`, capped, half of it random."""
    delay = min(cap, base * 2 ** (tries - 1))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


def take(delivery_id: str, *, settings: Settings, now: datetime) -> Taken | None:
    """Hold a due pending delivery for one try; None when it is not due, finished, held or gone."""
    hold = timedelta(seconds=HOLD_TIMEOUTS * settings.webhook_timeout_seconds + 10)
    with session_scope() as session:
        endpoint_id = session.scalar(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + hold)
            .returning(WebhookDelivery.endpoint_id)
            .execution_options(synchronize_session=False)
        )
        if endpoint_id is None:
            return None
        row = session.execute(
            select(WebhookEndpoint.url, WebhookEndpoint.secret, WebhookDelivery.payload)
            .join(WebhookDelivery, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
            .where(WebhookDelivery.id == delivery_id)
        ).one()
        return Taken(delivery_id=delivery_id, url=row.url, secret=row.secret, payload=row.payload)


def call_receiver(taken: Taken, *, settings: Settings) -> TryResult:
    """POST the signed payload to the receiver's checked address, with a timeout; keep its first bytes."""
    body = json.dumps(taken.payload, sort_keys=True, separators=(",", ":"))
    headers = signed_headers(taken.secret, message_id=taken.delivery_id, body=body, at=utcnow())
    started = time.monotonic()
    try:
        target = pinned_target(
            taken.url,
            allow_http=settings.webhook_allow_http,
            allow_private=settings.webhook_allow_private_addresses,
        )
        headers |= {"host": target.host_header, "content-type": "application/json", "user-agent": USER_AGENT}
        # No proxy from the environment: the call must go to the address that was checked.
        with (
            httpx.Client(timeout=settings.webhook_timeout_seconds, trust_env=False) as client,
            client.stream(
                "POST", target.url, content=body, headers=headers, extensions=target.extensions
            ) as response,
        ):
            excerpt = _first_bytes(response)
    except (UnsafeUrl, httpx.HTTPError) as error:
        message = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
        return TryResult(status_code=None, latency_ms=_since(started), error=message)
    return TryResult(status_code=response.status_code, latency_ms=_since(started), excerpt=excerpt)


def _first_bytes(response: httpx.Response) -> str:
    """The start of the answer's body, read no further than EXCERPT_BYTES."""
    kept = b""
    for chunk in response.iter_bytes():
        kept += chunk
        if len(kept) >= EXCERPT_BYTES:
            break
    return kept[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def record_try(delivery_id: str, result: TryResult, *, settings: Settings) -> float | None:
    """Log the try and move the delivery on; returns the seconds until its next try, None when it is done."""
    now = utcnow()
    with session_scope() as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None:
            return None  # its endpoint was deleted meanwhile
        delivery.attempts += 1
        delivery.tries += 1
        session.add(
            WebhookAttempt(
                delivery_id=delivery_id,
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
    """One try of a delivery if it is due; returns the seconds until the next try, None when none is due."""
    taken = take(delivery_id, settings=settings, now=utcnow())
    if taken is None:
        return None
    result = call_receiver(taken, settings=settings)
    if result.succeeded:
        logger.info("delivered %s (%d ms)", delivery_id, result.latency_ms)
    else:
        logger.info("delivery %s failed: %s", delivery_id, result.error or f"HTTP {result.status_code}")
    return record_try(delivery_id, result, settings=settings)


def due_unsent(*, settings: Settings, now: datetime, limit: int = 100) -> list[str]:
    """Pending deliveries due for longer than a sweep interval, which no message brought to a sender.

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
