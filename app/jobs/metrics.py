"""Metrics of jobs and of the workers running them, read from the jobs table at scrape time.

Counts cover the jobs stored now: deleting jobs lowers them, which Prometheus reads as a counter reset.
Each query is one aggregate over `jobs`; the queue's use the status index.
"""

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.jobs.models import TERMINAL_STATUSES, Job, JobStatus
from app.metrics.database import (
    DatabaseMetric,
    HistogramCounts,
    QueryHistogram,
    QueryMetric,
    Samples,
    bucket_columns,
    histogram_counts,
    seconds_between,
)

HOUR = 3600.0
QUEUED_BOUNDS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, HOUR, 4 * HOUR, 12 * HOUR)
RUNNING_BOUNDS = (60.0, 300.0, 900.0, 1800.0, HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR, 24 * HOUR, 72 * HOUR)
LIVE = [JobStatus.RUNNING.value, JobStatus.CANCELLING.value]
TERMINAL = sorted(status.value for status in TERMINAL_STATUSES)


def jobs_by_tenant_and_status(session: Session, _now: datetime) -> Samples:
    """Every status of every tenant that has jobs, zeros included, so a series never vanishes."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for tenant, status, count in session.execute(
        select(Job.tenant, Job.status, func.count()).group_by(Job.tenant, Job.status)
    ):
        counts[tenant][status] = count
    return [
        ((tenant, status.value), by_status.get(status.value, 0))
        for tenant, by_status in sorted(counts.items())
        for status in JobStatus
    ]


def queue_depth(session: Session, _now: datetime) -> Samples:
    """Jobs waiting for a worker."""
    count = session.scalar(select(func.count()).where(Job.status == JobStatus.QUEUED))
    return [((), count or 0)]


WAITING_REASONS = ("none", "resources", "quota")


def queued_by_waiting_for(session: Session, _now: datetime) -> Samples:
    """Queued jobs by why they wait: none (their turn), resources (no live worker could serve them), quota."""
    counts = dict.fromkeys(WAITING_REASONS, 0)
    for reason, count in session.execute(
        select(Job.waiting_for, func.count()).where(Job.status == JobStatus.QUEUED).group_by(Job.waiting_for)
    ):
        counts[reason or "none"] = count
    return [((reason,), count) for reason, count in counts.items()]


def oldest_queued_age(session: Session, now: datetime) -> Samples:
    """Seconds the longest-waiting queued job has waited; 0 with an empty queue."""
    oldest = session.scalar(select(func.min(Job.queued_at)).where(Job.status == JobStatus.QUEUED))
    return [((), _seconds_since(oldest, now) if oldest is not None else 0.0)]


def outcomes(session: Session, _now: datetime) -> Samples:
    """Finished jobs by status and error code ('' for none)."""
    code = Job.error["code"].as_string()
    rows = session.execute(
        select(Job.status, code, func.count()).where(Job.status.in_(TERMINAL)).group_by(Job.status, code)
    )
    return [((status, error_code or ""), count) for status, error_code, count in rows]


def time_queued(session: Session, _now: datetime, bounds: tuple[float, ...]) -> HistogramCounts:
    """How long started jobs waited in the queue before their last start."""
    waited = seconds_between(session, Job.queued_at, Job.started_at)
    row = session.execute(
        select(*bucket_columns(waited, bounds)).where(
            Job.started_at.is_not(None), Job.started_at >= Job.queued_at
        )
    ).one()
    return histogram_counts(row, bounds)


def time_running(session: Session, _now: datetime, bounds: tuple[float, ...]) -> HistogramCounts:
    """How long finished jobs ran, from their last start to their end."""
    ran = seconds_between(session, Job.started_at, Job.finished_at)
    row = session.execute(
        select(*bucket_columns(ran, bounds)).where(
            Job.status.in_(TERMINAL), Job.started_at.is_not(None), Job.finished_at.is_not(None)
        )
    ).one()
    return histogram_counts(row, bounds)


def heartbeat_ages(session: Session, now: datetime) -> list[float]:
    """Seconds since the last heartbeat of each worker now running a job."""
    rows = session.execute(
        select(Job.worker_id, func.max(Job.heartbeat_at))
        .where(Job.status.in_(LIVE), Job.worker_id.is_not(None), Job.heartbeat_at.is_not(None))
        .group_by(Job.worker_id)
    )
    return [_seconds_since(beat, now) for _worker, beat in rows if beat is not None]


def workers_seen(settings: Settings) -> QueryMetric:
    """Workers running a job, by the age of their last heartbeat: fresh, late, or past the lease (lost)."""
    late_after = 2 * settings.heartbeat_seconds

    def query(session: Session, now: datetime) -> Samples:
        ages = heartbeat_ages(session, now)
        fresh = sum(age <= late_after for age in ages)
        lost = sum(age > settings.lease_seconds for age in ages)
        return [(("fresh",), fresh), (("late",), len(ages) - fresh - lost), (("lost",), lost)]

    return QueryMetric(
        "distillery_workers_seen",
        f"Workers running a job, by heartbeat age: fresh (at most {late_after:g} s), late, or lost "
        f"(older than the {settings.lease_seconds:g} s lease). An idle worker writes no heartbeat.",
        ("heartbeat_age",),
        query,
    )


def oldest_heartbeat_age(session: Session, now: datetime) -> Samples:
    """The largest heartbeat age among workers running a job; 0 when none runs."""
    return [((), max(heartbeat_ages(session, now), default=0.0))]


def job_metrics(settings: Settings) -> Sequence[DatabaseMetric]:
    """Every metric of jobs and workers."""
    return [
        QueryMetric(
            "distillery_jobs",
            "Jobs stored, by tenant and status.",
            ("tenant", "status"),
            jobs_by_tenant_and_status,
        ),
        QueryMetric("distillery_queue_depth", "Jobs queued, waiting for a worker.", (), queue_depth),
        QueryMetric(
            "distillery_queued_jobs",
            "Queued jobs by why they wait: none (their turn), resources (no live worker has what they ask "
            "for), quota (their tenant is at its limit).",
            ("waiting_for",),
            queued_by_waiting_for,
        ),
        QueryMetric(
            "distillery_queue_oldest_seconds",
            "Seconds the oldest queued job has waited.",
            (),
            oldest_queued_age,
        ),
        QueryMetric(
            "distillery_job_outcomes",
            "Finished jobs, by outcome (succeeded, failed, cancelled) and error code ('' for none).",
            ("outcome", "error_code"),
            outcomes,
            kind="counter",
        ),
        QueryHistogram(
            "distillery_job_queued_seconds",
            "Seconds jobs waited in the queue before starting.",
            QUEUED_BOUNDS,
            time_queued,
        ),
        QueryHistogram(
            "distillery_job_running_seconds",
            "Seconds finished jobs ran, start to end.",
            RUNNING_BOUNDS,
            time_running,
        ),
        workers_seen(settings),
        QueryMetric(
            "distillery_worker_heartbeat_oldest_seconds",
            "Seconds since the stalest heartbeat of a worker running a job.",
            (),
            oldest_heartbeat_age,
        ),
    ]


def _seconds_since(moment: datetime, now: datetime) -> float:
    """Seconds from `moment` to `now`; a naive value (SQLite returns those) is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - moment).total_seconds())
