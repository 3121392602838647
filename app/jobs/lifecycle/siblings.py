"""Jobs waiting for the same teacher outputs as a starting one, so that its teacher pass is worth storing."""

from sqlalchemy import select

from app.core.db import session_scope
from app.jobs.models import Job, JobStatus
from distillery.jobspec import JobSpec
from distillery.jobspec.teacher_outputs import teacher_outputs_signature

# The tenant's oldest unfinished jobs looked at: enough for any sweep, bounded for a long queue.
SIBLINGS_LOOKED_AT = 500
UNFINISHED = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]


def teacher_output_readers(*, job_id: str, tenant: str, spec: JobSpec) -> int:
    """The tenant's other queued or running jobs whose teacher passes store the same entry as `spec`'s."""
    signature = teacher_outputs_signature(spec)
    if signature is None:
        return 0
    with session_scope() as session:
        specs = session.scalars(
            select(Job.spec)
            .where(Job.tenant == tenant, Job.status.in_(UNFINISHED), Job.id != job_id)
            .order_by(Job.created_at)
            .limit(SIBLINGS_LOOKED_AT)
        ).all()
    return sum(1 for other in specs if _signature(other) == signature)


def _signature(spec: dict[str, object]) -> str | None:
    """The stored spec's signature; None for one that no longer validates (an older schema)."""
    try:
        return teacher_outputs_signature(JobSpec.model_validate(spec))
    except ValueError:
        return None
