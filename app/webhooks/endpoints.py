"""Routes of webhooks: register, list, read and delete receivers; list and redeliver their deliveries."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api.deleted import Deleted
from app.api.deps import SessionDep, SettingsDep
from app.api.errors import error_responses
from app.api.pagination import After, Limit, list_page
from app.api.session_route import SessionEndingRoute
from app.auth.deps import TenantDep
from app.webhooks import service
from app.webhooks.models import DeliveryStatus
from app.webhooks.schemas import (
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryList,
    WebhookDeliveryPublic,
    WebhookList,
    WebhookPublic,
)
from distillery.jobspec.text import ResourceId

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=SessionEndingRoute)

WebhookId = Annotated[ResourceId, Path(description="The webhook's id, e.g. `wh_7e1f2a3b...`.")]
DeliveryId = Annotated[ResourceId, Path(description="The delivery's id, e.g. `evt_0a1b2c3d...`.")]


@router.post(
    "", status_code=201, summary="Register a webhook", responses=error_responses(400, 401, 409, 413, 422)
)
def create_webhook(
    endpoint_in: WebhookCreate, session: SessionDep, tenant: TenantDep, settings: SettingsDep
) -> WebhookCreated:
    """Register a receiver of job events; the answer holds its signing secret, shown this once."""
    endpoint = service.create_endpoint(
        session=session, tenant=tenant, endpoint_in=endpoint_in, settings=settings
    )
    return WebhookCreated(**WebhookPublic.from_row(endpoint).model_dump(), secret=endpoint.secret)


@router.get("", summary="List webhooks", responses=error_responses(401, 422))
def list_webhooks(
    session: SessionDep, tenant: TenantDep, limit: Limit = 20, after: After = None
) -> WebhookList:
    """List the registered receivers, newest first."""
    endpoints, has_more = service.list_endpoints(session=session, tenant=tenant, limit=limit, after=after)
    return list_page(WebhookList, [WebhookPublic.from_row(e) for e in endpoints], has_more=has_more)


@router.get("/{webhook_id}", summary="Get a webhook", responses=error_responses(401, 404, 422))
def get_webhook(webhook_id: WebhookId, session: SessionDep, tenant: TenantDep) -> WebhookPublic:
    """Get one receiver (its secret is not shown again)."""
    return WebhookPublic.from_row(service.get_endpoint(session=session, tenant=tenant, webhook_id=webhook_id))


@router.delete("/{webhook_id}", summary="Delete a webhook", responses=error_responses(401, 404, 422))
def delete_webhook(webhook_id: WebhookId, session: SessionDep, tenant: TenantDep) -> Deleted:
    """Delete a receiver and its deliveries; nothing more is sent to it."""
    service.delete_endpoint(session=session, tenant=tenant, webhook_id=webhook_id)
    return Deleted(id=webhook_id, object="webhook")


@router.get(
    "/{webhook_id}/deliveries",
    summary="List a webhook's deliveries",
    responses=error_responses(401, 404, 422),
)
def list_deliveries(
    webhook_id: WebhookId,
    session: SessionDep,
    tenant: TenantDep,
    limit: Limit = 20,
    after: After = None,
    status: Annotated[DeliveryStatus | None, Query(description="Only deliveries in this status.")] = None,
) -> WebhookDeliveryList:
    """List the events sent to a receiver, newest first, with every try's status code, latency and error."""
    deliveries, has_more = service.list_deliveries(
        session=session, tenant=tenant, webhook_id=webhook_id, limit=limit, after=after, status=status
    )
    data = [WebhookDeliveryPublic.from_row(delivery, attempts) for delivery, attempts in deliveries]
    return list_page(WebhookDeliveryList, data, has_more=has_more)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    summary="Redeliver an event",
    responses=error_responses(401, 404, 409, 422),
)
def redeliver(
    webhook_id: WebhookId, delivery_id: DeliveryId, session: SessionDep, tenant: TenantDep
) -> WebhookDeliveryPublic:
    """Send a finished delivery again, under the same id, with a fresh set of tries."""
    delivery, attempts = service.redeliver(
        session=session, tenant=tenant, webhook_id=webhook_id, delivery_id=delivery_id
    )
    return WebhookDeliveryPublic.from_row(delivery, attempts)
