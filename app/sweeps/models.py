"""The sweeps table: one recipe search, its stage, and its report once it finished."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, JSONType, new_id, utcnow


class SweepStatus(StrEnum):
    """running -> succeeded|failed; running -> cancelling -> cancelled once its jobs stopped."""

    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SweepStage(StrEnum):
    """Trials on the eval split, then the best one on the test split, then its control, then done."""

    TRIALS = "trials"
    TEST = "test"
    CONTROL = "control"
    DONE = "done"


class SweepRole(StrEnum):
    """What a job of a sweep is for (`jobs.sweep_role`)."""

    TRIAL = "trial"
    TEST = "test"
    CONTROL = "control"


FINISHED_SWEEP = frozenset({SweepStatus.SUCCEEDED, SweepStatus.FAILED, SweepStatus.CANCELLED})


class Sweep(Base):
    """A recipe sweep; its trials are jobs with its `sweep_id`, its optimiser's state an Optuna study."""

    __tablename__ = "sweeps"
    __table_args__ = (Index("ix_sweeps_tenant_created", "tenant", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("swp"))
    tenant: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=SweepStatus.RUNNING)
    stage: Mapped[str] = mapped_column(String(16), default=SweepStage.TRIALS)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]
    advancing_until: Mapped[datetime | None] = mapped_column(
        doc="A pass that advances the sweep holds it until then; another pass waits its turn."
    )
