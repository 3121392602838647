"""Tables of the jobs domain: jobs, their events, checkpoints and artifacts."""

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, select, text
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from app.core.base import Base, JSONType, new_id, utcnow


class JobStatus(StrEnum):
    """Lifecycle: queued -> running -> succeeded|failed|cancelled; running -> cancelling -> terminal."""

    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class Job(Base):
    """One distillation job; the row is the source of truth for its state."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
        Index("ix_jobs_tenant_created", "tenant", "created_at", "id"),
        Index("ix_jobs_status_queued", "status", "queued_at"),
        Index("ix_jobs_status_accelerator", "status", "accelerator"),
        Index("ix_jobs_tenant_started", "tenant", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job"))
    tenant: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    epoch: Mapped[float | None]
    estimated_finish_at: Mapped[datetime | None]
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow, doc="Last time the job became queued.")
    published_at: Mapped[datetime | None] = mapped_column(doc="Last time the job was sent to the broker.")
    publish_id: Mapped[str | None] = mapped_column(String(64), doc="Message id of the last publish.")
    deliveries: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", doc="Messages of this job that reached a worker."
    )
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"),
        index=True,
        doc="For a control run: the job it is the control of, created, cancelled and deleted with it.",
    )
    # What the scheduler reads, copied from the spec at creation (app/jobs/scheduling.py).
    priority_rank: Mapped[int] = mapped_column(Integer, default=1, server_default="1", doc="0 low, 2 high.")
    accelerator: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")
    devices: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    min_memory_gb: Mapped[float | None]
    worker_node: Mapped[str | None] = mapped_column(String(200), doc="The worker (Celery node) it runs on.")
    assigned_devices: Mapped[list[int] | None] = mapped_column(
        JSONType, doc="The worker's device indices (or CPU process slots) it holds while it runs."
    )
    waiting_for: Mapped[str | None] = mapped_column(
        String(16), doc="Why a queued job cannot start: resources, quota; None when it waits its turn."
    )
    sweep_id: Mapped[str | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"),
        index=True,
        doc="For a job of a recipe sweep: the sweep, which lists, cancels and deletes it.",
    )
    sweep_role: Mapped[str | None] = mapped_column(String(8), doc="In a sweep: trial, test or control.")
    trial_number: Mapped[int | None] = mapped_column(Integer, doc="A trial's number in its sweep's study.")
    if TYPE_CHECKING:  # mapped below the class, as a subquery on the table itself
        control_job_id: Mapped[str | None]

    events: Mapped[list["JobEvent"]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True
    )
    checkpoints: Mapped[list["Checkpoint"]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    artifacts: Mapped[list["Artifact"]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


# The scheduler's best-priority read (`queued_candidates`), over queued jobs only.
Index(
    "ix_jobs_queued_by_priority",
    Job.priority_rank.desc(),
    Job.queued_at,
    Job.id,
    postgresql_where=text("status = 'queued'"),
    sqlite_where=text("status = 'queued'"),
)


class JobEvent(Base):
    """A line of a job's log; `seq` orders the events of one job."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_events_job_id_seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(8), default="info")
    type: Mapped[str] = mapped_column(String(16), default="message")
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    job: Mapped[Job] = relationship(back_populates="events")


class Checkpoint(Base):
    """A saved training state of a job, resumable and downloadable."""

    __tablename__ = "checkpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ckpt"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float | None]
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    location: Mapped[str] = mapped_column(String(1000))
    is_best: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(Base):
    """A file a job produced: the student archive, the report, curves."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "name", name="uq_artifacts_job_id_name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("art"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# The parent's side of the link, read in the same query as the job: the link is set once, at creation.
_controls = Job.__table__.alias("controls")
Job.control_job_id = column_property(
    select(_controls.c.id).where(_controls.c.parent_id == Job.id).limit(1).scalar_subquery()
)
