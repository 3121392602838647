"""HTTP shapes of webhook endpoints and their deliveries."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator
from pydantic_core import PydanticCustomError

from app.api.pagination import ListObject
from app.api.timestamps import optional_unix_seconds, unix_seconds
from app.webhooks.models import DeliveryStatus, EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint

WEBHOOK_ID_EXAMPLE = "wh_7e1f2a3b4c5d6e7f8a9b0c1d"
# As stored; the URL is normalised first (a bare host gains a `/`), which may lengthen it.
MAX_URL_CHARS = 2083


class WebhookCreate(BaseModel):
    """A receiver to register: its URL and, optionally, the only event types it wants."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrl = Field(
        ...,
        description="Where events are POSTed; https (http only where the service allows it), on a public "
        "address unless the service allows private ones.",
        examples=["https://ml-platform.example.com/hooks/distillery"],
    )
    events: list[EventType] | None = Field(
        None,
        min_length=1,
        max_length=len(EventType),
        description="Event types to send; omit for all.",
        examples=[["job.succeeded", "job.failed"]],
    )

    @field_validator("url")
    @classmethod
    def _fits(cls, url: HttpUrl) -> HttpUrl:
        if len(str(url)) > MAX_URL_CHARS:
            raise PydanticCustomError(
                "url_too_long", "the URL is longer than {limit} characters", {"limit": MAX_URL_CHARS}
            )
        return url


class WebhookPublic(BaseModel):
    """A registered receiver; its secret is shown only when it is created."""

    id: str = Field(..., examples=[WEBHOOK_ID_EXAMPLE])
    object: Literal["webhook"] = "webhook"
    url: str
    events: list[EventType] | None = Field(..., description="Event types sent; null for all.")
    created_at: int = Field(..., description="Unix seconds.")

    @classmethod
    def from_row(cls, endpoint: WebhookEndpoint) -> "WebhookPublic":
        """The public view of a stored endpoint."""
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            events=[EventType(name) for name in endpoint.events] if endpoint.events is not None else None,
            created_at=unix_seconds(endpoint.created_at),
        )


class WebhookCreated(WebhookPublic):
    """A new receiver, with the secret that verifies its deliveries: store it now, it is not shown again."""

    secret: str = Field(
        ...,
        description="Standard Webhooks signing secret; pass it to a verifier such as `standardwebhooks`.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookList(ListObject[WebhookPublic, str]):
    """A page of receivers, newest first."""


class WebhookAttemptPublic(BaseModel):
    """One call to the receiver."""

    number: int = Field(..., description="1 for the first try of the delivery.")
    created_at: int
    status_code: int | None = Field(..., description="The receiver's answer; null when there was none.")
    latency_ms: int
    error: str | None = Field(None, description="Why no answer came: a timeout, a refused address...")
    response_excerpt: str | None = Field(None, description="The first 1 KiB of the answer's body.")

    @classmethod
    def from_row(cls, attempt: WebhookAttempt) -> "WebhookAttemptPublic":
        """The public view of a stored attempt."""
        return cls(
            number=attempt.number,
            created_at=unix_seconds(attempt.created_at),
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            error=attempt.error,
            response_excerpt=attempt.response_excerpt,
        )


class WebhookDeliveryPublic(BaseModel):
    """One event for one receiver; `id` is the `webhook-id` header of every try."""

    id: str = Field(..., examples=["evt_0a1b2c3d4e5f6a7b8c9d0e1f"])
    object: Literal["webhook.delivery"] = "webhook.delivery"
    webhook_id: str
    event_type: EventType
    job_id: str | None
    status: DeliveryStatus
    payload: dict[str, Any] = Field(..., description="The JSON body sent.")
    attempts: list[WebhookAttemptPublic] = Field(..., description="Every try, oldest first.")
    next_attempt_at: int | None = Field(None, description="When a pending delivery is tried next.")
    created_at: int
    finished_at: int | None

    @classmethod
    def from_row(cls, delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> "WebhookDeliveryPublic":
        """The public view of a stored delivery and its attempts."""
        pending = delivery.status == DeliveryStatus.PENDING
        return cls(
            id=delivery.id,
            webhook_id=delivery.endpoint_id,
            event_type=EventType(delivery.event_type),
            job_id=delivery.job_id,
            status=DeliveryStatus(delivery.status),
            payload=delivery.payload,
            attempts=[WebhookAttemptPublic.from_row(attempt) for attempt in attempts],
            next_attempt_at=optional_unix_seconds(delivery.next_attempt_at) if pending else None,
            created_at=unix_seconds(delivery.created_at),
            finished_at=optional_unix_seconds(delivery.finished_at),
        )


class WebhookDeliveryList(ListObject[WebhookDeliveryPublic, str]):
    """A page of deliveries, newest first."""
