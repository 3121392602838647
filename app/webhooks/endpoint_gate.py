"""Whether a try to an endpoint may start now: the endpoint's own concurrency limit and circuit breaker.

Both are rows in the database, so they hold across every webhook worker process: a try in flight is a
delivery whose lease (`sending_until`) has not lapsed, and the circuit is the endpoint's
`circuit_open_until`. Callers hold the endpoint's row lock, so two senders never both take its last
free place. The circuit is:

- closed (None): up to `webhook_endpoint_concurrency` tries at once; `webhook_circuit_failures` failed
  tries in a row open it for `webhook_circuit_open_seconds`;
- open (a time to come): deliveries wait until then, without using up a try;
- half-open (a time past): one probe try goes; a 2xx closes the circuit, a failure opens it again.
"""

import logging
import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.webhooks.models import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

# A lease outlasts its try's deadline by this much: time to record the try once the call has ended.
LEASE_SLACK_SECONDS = 10.0
# The shortest wait of a delivery whose endpoint is busy; slower endpoints make it wait longer.
BUSY_WAIT_SECONDS = 0.5


def lease_seconds(settings: Settings) -> float:
    """How long a try holds its delivery: a sender that dies mid-try frees it once this has passed."""
    return settings.webhook_deadline_seconds + LEASE_SLACK_SECONDS


def wait_before_try(
    session: Session,
    endpoint: WebhookEndpoint,
    *,
    now: datetime,
    settings: Settings,
    rng: random.Random | None = None,
) -> float | None:
    """None when a try to the endpoint may start now; otherwise the seconds its delivery should wait."""
    rng = rng or random.Random()
    open_until = _aware(endpoint.circuit_open_until)
    if open_until is not None and open_until > now:
        return (open_until - now).total_seconds() + rng.uniform(0, BUSY_WAIT_SECONDS)
    in_flight, first_lease_end = session.execute(
        select(func.count(), func.min(WebhookDelivery.sending_until)).where(
            WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.sending_until > now
        )
    ).one()
    limit = settings.webhook_endpoint_concurrency if open_until is None else 1  # half-open: one probe
    if in_flight < limit:
        return None
    # The longer the tries in flight have run, the longer the wait: a slow endpoint's backlog polls less.
    lease_left = (_aware(first_lease_end) or now) - now
    running = lease_seconds(settings) - lease_left.total_seconds()
    base = min(max(BUSY_WAIT_SECONDS, running), lease_seconds(settings))
    return rng.uniform(base, 2 * base)


def record_outcome(endpoint: WebhookEndpoint, *, succeeded: bool, now: datetime, settings: Settings) -> None:
    """A 2xx closes the circuit; a failure counts, and opens (or reopens) it once too many are in a row."""
    if succeeded:
        if endpoint.circuit_open_until is not None:
            logger.info("the circuit of webhook %s is closed again", endpoint.id)
        endpoint.consecutive_failures, endpoint.circuit_open_until = 0, None
        return
    endpoint.consecutive_failures += 1
    if endpoint.consecutive_failures >= settings.webhook_circuit_failures:
        if endpoint.circuit_open_until is None:
            logger.warning(
                "the circuit of webhook %s opened after %d failed tries in a row",
                endpoint.id,
                endpoint.consecutive_failures,
            )
        endpoint.circuit_open_until = now + timedelta(seconds=settings.webhook_circuit_open_seconds)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite returns naive timestamps; they are UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
