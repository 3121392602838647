"""The plain data that crosses the lifecycle seam: ids, dicts and these small frozen records, no ORM rows."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Level = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs to run the job it has just claimed."""

    id: str
    tenant: str
    spec: dict[str, Any]
    attempts: int
    devices: tuple[int, ...] = ()  # the worker's accelerator indices given to the job; empty on the CPU


@dataclass(frozen=True)
class Progress:
    """Where a running job is, stored with its next heartbeat."""

    step: int
    total_steps: int
    epoch: float
    estimated_finish_at: datetime | None


@dataclass(frozen=True)
class LogLine:
    """A line of the job's log."""

    message: str
    level: Level = "info"


@dataclass(frozen=True)
class MetricsLine:
    """Training or evaluation metrics at a step."""

    step: int
    epoch: float
    split: Literal["train", "eval"]
    metrics: dict[str, float]


@dataclass(frozen=True)
class CheckpointSaved:
    """A checkpoint the engine wrote, at `location` in the artifact store."""

    step: int
    epoch: float
    location: str
    metrics: dict[str, Any]
    is_best: bool


# What a running job reports that must not be lost: written in order, in one transaction per batch.
Record = LogLine | MetricsLine | CheckpointSaved


@dataclass(frozen=True)
class StoredArtifact:
    """A file of the job's outcome, already at `location` in the artifact store."""

    name: str
    location: str
    bytes: int
    sha256: str
