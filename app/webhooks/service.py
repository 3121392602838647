"""Webhook endpoints and their deliveries: register, read, delete, redeliver; functions only flush."""

from collections import defaultdict

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.api.errors import Conflict, InvalidField, NotFound
from app.api.pagination import page_newest_first
from app.core.base import utcnow
from app.core.config import Settings
from app.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.outbox import send_after_commit
from app.webhooks.schemas import WebhookCreate
from app.webhooks.signing import new_secret
from app.webhooks.url_safety import UnsafeUrl, check_registration

# Every job event writes one row per endpoint of its tenant: a bound keeps that cost small.
MAX_ENDPOINTS_PER_TENANT = 20


def create_endpoint(
    *, session: Session, tenant: str, endpoint_in: WebhookCreate, settings: Settings
) -> WebhookEndpoint:
    """Register a receiver after checking its URL; its new secret is on the returned row."""
    url = str(endpoint_in.url)
    try:
        check_registration(
            url,
            allow_http=settings.webhook_allow_http,
            allow_private=settings.webhook_allow_private_addresses,
        )
    except UnsafeUrl as error:
        raise InvalidField("url", error.with_fix(), code="url_not_allowed") from error
    count = session.scalar(select(func.count(WebhookEndpoint.id)).where(WebhookEndpoint.tenant == tenant))
    if (count or 0) >= MAX_ENDPOINTS_PER_TENANT:
        raise Conflict(
            f"a tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhooks; delete one first",
            code="too_many_webhooks",
        )
    events = None if endpoint_in.events is None else sorted(set(endpoint_in.events))
    endpoint = WebhookEndpoint(tenant=tenant, url=url, events=events, secret=new_secret())
    session.add(endpoint)
    session.flush()
    return endpoint


def get_endpoint(*, session: Session, tenant: str, webhook_id: str) -> WebhookEndpoint:
    """An endpoint of the tenant; 404 for a missing one and for another tenant's."""
    endpoint = session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == webhook_id, WebhookEndpoint.tenant == tenant)
    )
    if endpoint is None:
        raise NotFound("webhook", webhook_id)
    return endpoint


def list_endpoints(
    *, session: Session, tenant: str, limit: int, after: str | None
) -> tuple[list[WebhookEndpoint], bool]:
    """A page of the tenant's endpoints, newest first, and whether more follow."""
    statement = select(WebhookEndpoint).where(WebhookEndpoint.tenant == tenant)
    return page_newest_first(
        session, statement, entity=WebhookEndpoint, tenant=tenant, limit=limit, after=after
    )


def delete_endpoint(*, session: Session, tenant: str, webhook_id: str) -> None:
    """Delete an endpoint with its deliveries: nothing more is sent to it."""
    endpoint = get_endpoint(session=session, tenant=tenant, webhook_id=webhook_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    session.delete(endpoint)
    session.flush()


def list_deliveries(
    *,
    session: Session,
    tenant: str,
    webhook_id: str,
    limit: int,
    after: str | None,
    status: DeliveryStatus | None = None,
) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], bool]:
    """A page of an endpoint's deliveries, newest first, each with its attempts; and whether more follow."""
    get_endpoint(session=session, tenant=tenant, webhook_id=webhook_id)
    statement = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == webhook_id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status.value)
    deliveries, has_more = page_newest_first(
        session, statement, entity=WebhookDelivery, tenant=tenant, limit=limit, after=after
    )
    attempts: dict[str, list[WebhookAttempt]] = defaultdict(list)
    if deliveries:
        rows = session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([delivery.id for delivery in deliveries]))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        )
        for attempt in rows:
            attempts[attempt.delivery_id].append(attempt)
    return [(delivery, attempts[delivery.id]) for delivery in deliveries], has_more


def redeliver(
    *, session: Session, tenant: str, webhook_id: str, delivery_id: str
) -> tuple[WebhookDelivery, list[WebhookAttempt]]:
    """Queue a finished delivery again, same id, with a fresh set of tries; a pending one is a 409."""
    get_endpoint(session=session, tenant=tenant, webhook_id=webhook_id)
    delivery = session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == webhook_id)
        .with_for_update()
    )
    if delivery is None:
        raise NotFound("delivery", delivery_id)
    if delivery.status == DeliveryStatus.PENDING:
        raise Conflict(f"delivery '{delivery_id}' is still being sent", code="delivery_pending")
    delivery.status, delivery.tries = DeliveryStatus.PENDING, 0
    delivery.next_attempt_at, delivery.finished_at = utcnow(), None
    session.flush()
    send_after_commit(session, [delivery.id])
    attempts = session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery.id)
        .order_by(WebhookAttempt.number)
    )
    return delivery, list(attempts)
