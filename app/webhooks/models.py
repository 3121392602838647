"""Tables of webhooks: the receivers a tenant registered, the outbox of deliveries, and every attempt."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, JSONType, new_id, utcnow


class EventType(StrEnum):
    """What a webhook reports: a job's change of state, a checkpoint it saved, or its control's outcome."""

    JOB_QUEUED = "job.queued"
    JOB_RUNNING = "job.running"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    JOB_CHECKPOINT = "job.checkpoint"
    # A job's control ended and its gain and verdict are in the job's result (sent after job.succeeded
    # when the control ends last).
    JOB_CONTROL_SETTLED = "job.control_settled"


class DeliveryStatus(StrEnum):
    """pending: to be tried (again); succeeded: a receiver answered 2xx; failed: every try failed."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookEndpoint(Base):
    """A receiver URL of one tenant, with the secret its deliveries are signed with."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant_created", "tenant", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("wh"))
    tenant: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2083), doc="At most MAX_URL_CHARS of the schemas.")
    events: Mapped[list[str] | None] = mapped_column(JSONType, doc="Event types sent; None for all.")
    # Kept as is: signing needs the secret itself, as a password check would not.
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    consecutive_failures: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", doc="Failed tries in a row; a 2xx sets it back to 0."
    )
    circuit_open_until: Mapped[datetime | None] = mapped_column(
        doc="None: closed. Later than now: open, deliveries wait. Past: half-open, one probe may go."
    )


class WebhookDelivery(Base):
    """One event for one endpoint: written with the change it reports (the outbox), then sent until done.

    Its id is the event's id, in the payload and in the `webhook-id` header of every try.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
        Index("ix_webhook_deliveries_status_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_sending", "endpoint_id", "sending_until"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("evt"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(String(40), doc="Not a foreign key: it outlives the job.")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0, doc="Tries made, redeliveries included.")
    tries: Mapped[int] = mapped_column(Integer, default=0, doc="Tries made since it was last (re)queued.")
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        doc="When the next try is due; while a sender holds it, when its hold lapses."
    )
    sending_until: Mapped[datetime | None] = mapped_column(
        doc="While a try is in flight, the end of its lease: its deadline and some slack."
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One call to a receiver: its answer's status code and first bytes, or why there was none."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
