"""HTTP shapes of the workers registry."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.api.pagination import ListObject
from app.api.timestamps import unix_seconds
from app.workers.models import Worker
from app.workers.service import public_id


class WorkerPublic(BaseModel):
    """A live job worker and what it has; its host is not shown."""

    id: str = Field(..., examples=["wkr_5d41402abc4b2a76b9719d91"])
    object: Literal["worker"] = "worker"
    accelerator: Literal["cpu", "cuda"]
    accelerator_model: str | None = Field(None, examples=["NVIDIA H100 80GB HBM3"])
    devices: int = Field(..., description="GPUs, or on the CPU, process slots.")
    device_memory_gb: float | None = Field(None, description="Memory of each GPU; null on the CPU.")
    host_memory_gb: float | None
    disk_free_gb: float | None
    concurrency: int = Field(..., description="Jobs it runs at once.")
    versions: dict[str, Any] = Field(..., examples=[{"python": "3.12.3", "torch": "2.5.1"}])
    started_at: int
    heartbeat_at: int

    @classmethod
    def from_row(cls, worker: Worker) -> "WorkerPublic":
        """The public view of a worker's row."""
        return cls(
            id=public_id(worker.id),
            accelerator=worker.accelerator,  # type: ignore[arg-type]
            accelerator_model=worker.accelerator_model,
            devices=worker.devices,
            device_memory_gb=worker.device_memory_gb,
            host_memory_gb=worker.host_memory_gb,
            disk_free_gb=worker.disk_free_gb,
            concurrency=worker.concurrency,
            versions=worker.versions,
            started_at=unix_seconds(worker.started_at),
            heartbeat_at=unix_seconds(worker.heartbeat_at),
        )


class WorkerList(ListObject[WorkerPublic, str]):
    """A page of live workers."""
