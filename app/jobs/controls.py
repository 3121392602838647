"""Control runs: a job's twin trained without its teacher, created, stopped and settled with it.

When both have finished, the parent's result reports its gain over the control and the verdict
(`result.control`, see `app.jobs.control_report`), and its receivers get `job.control_settled`.
Whichever of the two finishes last writes it: every terminal transition of either job first locks the
parent's row, so the two take turns and the second sees both outcomes.
"""

from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.jobs.control_report import control_summary, describe
from app.jobs.events import append_event
from app.jobs.models import TERMINAL_STATUSES, Job, JobStatus
from app.jobs.scheduling import scheduling_columns
from app.jobs.webhook_events import EventType, record_job_event, record_status_change
from distillery.jobspec import JobSpec, ModelRef

CONTROL_SUFFIX = " (control)"


def create_control(session: Session, *, parent: Job, spec: JobSpec, base: ModelRef | None = None) -> Job:
    """Queue the control of a new job: its spec without the teacher's part, for the same tenant.

    A base control (`control: base`) starts its student from `base`, the model the teacher was trained from.
    """
    name = f"{parent.name[: 200 - len(CONTROL_SUFFIX)]}{CONTROL_SUFFIX}" if parent.name else None
    control = Job(
        tenant=parent.tenant,
        name=name,
        spec=spec.control_spec(base).model_dump(mode="json"),
        metadata_=parent.metadata_,
        status=JobStatus.QUEUED,
        parent_id=parent.id,
        **scheduling_columns(spec),
    )
    session.add(control)
    session.flush()
    append_event(
        session,
        job_id=control.id,
        type="status",
        message=f"job queued as the control of {parent.id}",
        data={"status": "queued", "parent_id": parent.id},
    )
    record_status_change(session, job_id=control.id, status=JobStatus.QUEUED)
    return control


def lock_parent(session: Session, *, job_id: str) -> str:
    """Before a job ends, lock its parent's row (a parent's own is its update's); returns the parent's id."""
    parent_id = session.scalar(select(func.coalesce(Job.parent_id, Job.id)).where(Job.id == job_id))
    if parent_id is None:
        return job_id
    if parent_id != job_id:
        session.execute(select(Job.id).where(Job.id == parent_id).with_for_update())
    return str(parent_id)


def settle(session: Session, *, parent_id: str) -> None:
    """After a job of a pair ended: report the control in a succeeded parent's result, or else stop it."""
    rows = session.execute(
        select(Job.id, Job.parent_id, Job.status, Job.result, Job.error, Job.spec).where(
            or_(Job.id == parent_id, Job.parent_id == parent_id)
        )
    ).all()
    parent = next((row for row in rows if row.id == parent_id), None)
    control = next((row for row in rows if row.parent_id == parent_id), None)
    if parent is None or control is None or parent.status not in TERMINAL_STATUSES:
        return
    if parent.status != JobStatus.SUCCEEDED:  # no student to compare: the control would run for nothing
        stop_control(session, parent_id=parent_id, reason=f"job {parent_id} {parent.status}")
        return
    if not isinstance(parent.result, dict):
        return
    summary = control_summary(parent.result, control, parent.spec or {})
    if parent.result.get("control") == summary:
        return
    session.execute(
        update(Job)
        .where(Job.id == parent_id)
        .values(result={**parent.result, "control": summary}, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if summary["status"] != "pending":
        append_event(
            session,
            job_id=parent_id,
            type="control",
            level="warning" if summary["status"] == JobStatus.FAILED else "info",
            message=describe(summary),
            data=summary,
        )
        # The parent's own end may have gone out with the control pending: this one carries the verdict.
        record_job_event(session, job_id=parent_id, event_type=EventType.JOB_CONTROL_SETTLED)


def stop_control(session: Session, *, parent_id: str, reason: str) -> None:
    """Cancel a job's control at once if it is queued, or ask its worker to stop; nothing once it ended."""
    control_id = session.scalar(select(Job.id).where(Job.parent_id == parent_id))
    if control_id is None:
        return
    now = utcnow()
    # The two compare-and-sets of a cancel request: queued -> cancelled, running -> cancelling.
    moves: tuple[tuple[JobStatus, JobStatus, dict[str, Any], str], ...] = (
        (JobStatus.QUEUED, JobStatus.CANCELLED, {"finished_at": now}, "job cancelled"),
        (JobStatus.RUNNING, JobStatus.CANCELLING, {}, "cancellation requested"),
    )
    for source, target, values, message in moves:
        statement = (
            update(Job)
            .where(Job.id == control_id, Job.status == source)
            .values(status=target, updated_at=now, cancel_requested_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        if session.execute(statement).rowcount == 1:  # type: ignore[attr-defined]
            append_event(
                session,
                job_id=control_id,
                type="status",
                message=f"{message} with its parent ({reason})",
                data={"status": target.value},
            )
            record_status_change(session, job_id=control_id, status=target)
            return
