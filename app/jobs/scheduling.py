"""Which queued job a free worker claims, and why one waits: the rules, as pure functions.

The order: effective priority (its own, one level higher per `scheduler_ageing_seconds` waited, so a
starved job runs within a bounded wait), then the tenant with the fewest running devices, then the
tenant whose last start is oldest (round robin between tenants at an equal share), then the oldest job.
A job is skipped where it does not fit the worker's free devices, memory or accelerator, or where its
tenant is at a limit. The reads and the claim's transaction are in `app/jobs/lifecycle/claiming.py`.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from app.core.config import Settings
from app.workers.records import LiveWorker
from distillery.jobspec import JobSpec

PRIORITY_RANKS = {"low": 0, "normal": 1, "high": 2}
WaitingFor = Literal["resources", "quota"]


def scheduling_columns(spec: JobSpec) -> dict[str, object]:
    """The job columns the claim reads, copied from its spec at creation."""
    return {
        "priority_rank": PRIORITY_RANKS[spec.priority],
        "accelerator": spec.resources.accelerator,
        "devices": spec.resources.devices * spec.resources.nodes,
        "min_memory_gb": spec.resources.min_memory_gb,
    }


@dataclass(frozen=True)
class Candidate:
    """A queued job as the claim sees it."""

    id: str
    tenant: str
    priority_rank: int
    queued_at: datetime
    accelerator: str
    devices: int
    min_memory_gb: float | None


@dataclass(frozen=True)
class Usage:
    """What a tenant runs now, and when it last started a job."""

    jobs: int = 0
    devices: int = 0
    last_start: datetime | None = None


@dataclass(frozen=True)
class Limits:
    """How much a tenant may run at once; None: no limit."""

    jobs: int | None = None
    devices: int | None = None

    def allow(self, usage: Usage, devices: int) -> bool:
        """Whether the tenant may start one more job of `devices` devices now."""
        if self.jobs is not None and usage.jobs >= self.jobs:
            return False
        return self.devices is None or usage.devices + devices <= self.devices


def limits_for(settings: Settings, overrides: tuple[int | None, int | None] | None) -> Limits:
    """The deployment's defaults, replaced by what the tenant's keys set."""
    jobs, devices = overrides or (None, None)
    return Limits(
        jobs=jobs if jobs is not None else settings.tenant_max_running_jobs,
        devices=devices if devices is not None else settings.tenant_max_running_devices,
    )


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def effective_priority(candidate: Candidate, *, now: datetime, ageing_seconds: float) -> int:
    """Its rank, plus one per ageing period it has waited."""
    waited = (now - aware(candidate.queued_at)).total_seconds()
    return candidate.priority_rank + max(0, int(waited // ageing_seconds))


def claim_order(
    candidates: Iterable[Candidate], *, usage: dict[str, Usage], now: datetime, ageing_seconds: float
) -> list[Candidate]:
    """The candidates, the one to claim first first."""

    def key(candidate: Candidate) -> tuple[int, int, float, datetime, str]:
        tenant = usage.get(candidate.tenant, Usage())
        last_start = aware(tenant.last_start).timestamp() if tenant.last_start else float("-inf")
        priority = effective_priority(candidate, now=now, ageing_seconds=ageing_seconds)
        return (-priority, tenant.devices, last_start, aware(candidate.queued_at), candidate.id)

    return sorted(candidates, key=key)


def claimable(
    ordered: Iterable[Candidate],
    *,
    worker: LiveWorker,
    free_devices: int,
    usage: dict[str, Usage],
    limits: dict[str, Limits],
) -> Iterator[Candidate]:
    """The ordered candidates that fit the worker's free devices and their tenant's limits."""
    for candidate in ordered:
        if candidate.devices > free_devices:
            continue
        if not worker.serves(
            accelerator=candidate.accelerator,
            devices=candidate.devices,
            min_memory_gb=candidate.min_memory_gb,
        ):
            continue
        if limits.get(candidate.tenant, Limits()).allow(
            usage.get(candidate.tenant, Usage()), candidate.devices
        ):
            yield candidate


def waiting_reason(
    candidate: Candidate, *, workers: list[LiveWorker], usage: Usage, limits: Limits
) -> WaitingFor | None:
    """Why a queued job cannot start: no live worker could serve it, or its tenant is at a limit."""
    if not any(
        worker.serves(
            accelerator=candidate.accelerator,
            devices=candidate.devices,
            min_memory_gb=candidate.min_memory_gb,
        )
        for worker in workers
    ):
        return "resources"
    return None if limits.allow(usage, candidate.devices) else "quota"
