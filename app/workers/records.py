"""The plain data a worker reports about itself, and what the scheduler reads of a live worker."""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WorkerCapacity:
    """What a job worker has, probed at its start and with each heartbeat (`worker/capacity.py`)."""

    host: str
    accelerator: str  # cuda or cpu
    devices: int  # GPUs, or on the CPU, process slots
    concurrency: int
    accelerator_model: str | None = None
    device_memory_gb: float | None = None
    host_memory_gb: float | None = None
    disk_free_gb: float | None = None
    versions: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveWorker:
    """What the scheduler needs of a worker whose heartbeat is within the lease."""

    id: str
    accelerator: str
    devices: int
    memory_gb: float | None  # per device: GPU memory, or the host's on the CPU

    def serves(self, *, accelerator: str, devices: int, min_memory_gb: float | None) -> bool:
        """Whether a job asking for this could ever run here (when the worker is idle)."""
        if accelerator not in ("auto", self.accelerator) or devices > self.devices:
            return False
        return min_memory_gb is None or (self.memory_gb is not None and self.memory_gb >= min_memory_gb)
