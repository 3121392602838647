"""What a claim and the waiting reasons read: queued candidates, tenants' usage and limits, free devices."""

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.auth import service as auth_service
from app.core.config import Settings
from app.jobs.models import Job, JobStatus
from app.jobs.scheduling import Candidate, Limits, Usage, limits_for

LIVE = [JobStatus.RUNNING.value, JobStatus.CANCELLING.value]
# Queued jobs one claim reads at most: this many by priority and as many by age (the most aged).
CANDIDATES_EACH_WAY = 1000
# Any constant: the key of the advisory lock that takes claims in turn on Postgres.
CLAIM_LOCK_KEY = 0x6469_7374_6C6C  # "distll"


def serialise_claims(session: Session) -> None:
    """Take claims in turn across every worker, so tenants' usage read now holds until the commit.

    On SQLite the claim's first statement is a write, which takes the database's write lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})


CANDIDATE_COLUMNS = (
    Job.id,
    Job.tenant,
    Job.priority_rank,
    Job.queued_at,
    Job.accelerator,
    Job.devices,
    Job.min_memory_gb,
)


def queued_candidates(session: Session, *, accelerators: list[str] | None) -> list[Candidate]:
    """Queued jobs asking for one of `accelerators` (all with None): the best by priority, and the oldest."""
    statement = select(*CANDIDATE_COLUMNS).where(Job.status == JobStatus.QUEUED.value)
    if accelerators is not None:
        statement = statement.where(Job.accelerator.in_(accelerators))
    by_priority = statement.order_by(Job.priority_rank.desc(), Job.queued_at, Job.id)
    by_age = statement.order_by(Job.queued_at, Job.id)
    rows = {}
    for ordered in (by_priority, by_age):
        for row in session.execute(ordered.limit(CANDIDATES_EACH_WAY)):
            rows[row.id] = Candidate(**row._asdict())
    return list(rows.values())


def tenant_usage(session: Session, *, tenants: set[str]) -> dict[str, Usage]:
    """Each tenant's running jobs and devices, and its last start."""
    if not tenants:
        return {}
    running = {
        tenant: (jobs, int(devices or 0))
        for tenant, jobs, devices in session.execute(
            select(Job.tenant, func.count(), func.sum(Job.devices))
            .where(Job.status.in_(LIVE), Job.tenant.in_(tenants))
            .group_by(Job.tenant)
        )
    }
    # One max() per tenant, each answered from the end of the (tenant, started_at) index; a GROUP BY
    # over all tenants read every row of theirs instead (70 to 100 ms at 100k jobs of one tenant).
    ordered = sorted(tenants)
    latest = session.execute(
        select(*(select(func.max(Job.started_at)).where(Job.tenant == t).scalar_subquery() for t in ordered))
    ).one()
    starts = dict(zip(ordered, latest, strict=True))
    return {tenant: Usage(*running.get(tenant, (0, 0)), last_start=starts.get(tenant)) for tenant in tenants}


def tenant_limits(session: Session, *, tenants: set[str], settings: Settings) -> dict[str, Limits]:
    """Each tenant's limits: its keys' own, else the deployment's."""
    overrides = auth_service.tenant_limits(session=session, tenants=tenants)
    return {tenant: limits_for(settings, overrides.get(tenant)) for tenant in tenants}


def free_devices(session: Session, *, node: str, devices: int) -> list[int]:
    """The worker's device indices that none of its running jobs holds."""
    held = session.scalars(select(Job.assigned_devices).where(Job.worker_node == node, Job.status.in_(LIVE)))
    taken = {index for indices in held for index in (indices or [])}
    return [index for index in range(devices) if index not in taken]
