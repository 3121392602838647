"""Table of the job workers that run now: each one's capacity, refreshed by its heartbeat."""

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import Base, JSONType, utcnow


class Worker(Base):
    """A job worker (`distillery worker`), named by its Celery node name; gone once its heartbeat lapses."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True, doc="The Celery node name.")
    host: Mapped[str] = mapped_column(String(255))
    accelerator: Mapped[str] = mapped_column(String(8), doc="cuda or cpu.")
    accelerator_model: Mapped[str | None] = mapped_column(String(200))
    devices: Mapped[int] = mapped_column(Integer, doc="GPUs, or on the CPU, process slots.")
    device_memory_gb: Mapped[float | None] = mapped_column(doc="Memory of each GPU; None on the CPU.")
    host_memory_gb: Mapped[float | None]
    disk_free_gb: Mapped[float | None] = mapped_column(doc="Free space of the data directory.")
    versions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    concurrency: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
