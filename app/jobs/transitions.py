"""The job state machine; every transition is one compare-and-set UPDATE."""

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.api.errors import Conflict
from app.core.base import utcnow
from app.jobs.controls import lock_parent, settle
from app.jobs.models import TERMINAL_STATUSES, Job, JobStatus
from app.jobs.webhook_events import record_status_change

S = JobStatus
ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    # running -> queued only when a worker's lease expired and the job is retried.
    S.RUNNING: frozenset({S.CANCELLING, S.SUCCEEDED, S.FAILED, S.QUEUED}),
    S.CANCELLING: frozenset({S.CANCELLED, S.SUCCEEDED, S.FAILED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


class IllegalTransition(Conflict):
    """The job was not in a state from which the transition is allowed: a 409 when a request caused it."""

    def __init__(self, job_id: str, target: JobStatus, current: str | None) -> None:
        self.job_id, self.target, self.current = job_id, target, current
        super().__init__(
            f"job {job_id} is {current or 'gone'} and cannot become {target}", code="illegal_transition"
        )


def sources_of(target: JobStatus) -> list[JobStatus]:
    """The states from which `target` may be reached."""
    return [source for source, targets in ALLOWED.items() if target in targets]


def transition(
    session: Session,
    *,
    job_id: str,
    target: JobStatus,
    sources: list[JobStatus] | None = None,
    worker_id: str | None = None,
    values: dict[str, Any] | None = None,
) -> None:
    """Move a job to `target` if it is in an allowed source state (and owned by `worker_id` when given).

    Raises IllegalTransition when no row matched: another actor changed the job first. The change's
    webhook deliveries are written in the same transaction, and a job that ends settles its control
    run, or its parent's.
    """
    ending = target in TERMINAL_STATUSES
    parent_id = lock_parent(session, job_id=job_id) if ending else None
    allowed = sources_of(target) if sources is None else [s for s in sources if target in ALLOWED[s]]
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_([s.value for s in allowed]))
        .values(status=target.value, updated_at=utcnow(), **(values or {}))
        .execution_options(synchronize_session=False)
    )
    if worker_id is not None:
        statement = statement.where(Job.worker_id == worker_id)
    if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
        current = session.get(Job, job_id, populate_existing=True)
        raise IllegalTransition(job_id, target, current.status if current else None)
    if parent_id is not None:
        settle(session, parent_id=parent_id)
    # After settling, so that a job's end carries its control's gain when the control ended first.
    record_status_change(session, job_id=job_id, status=target)
    session.flush()
