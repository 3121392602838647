"""Control runs: a job's twin trained without its teacher, created, stopped and settled with it.

When both have finished, the parent's result reports its gain over the control (`result.control`).
Whichever of the two finishes last writes it: every terminal transition of either job first locks the
parent's row, so the two take turns and the second sees both outcomes.
"""

from typing import Any

from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.jobs.events import append_event
from app.jobs.models import TERMINAL_STATUSES, Job, JobStatus
from app.jobs.scheduling import scheduling_columns
from app.jobs.webhook_events import record_status_change
from distillery.jobspec import JobSpec

# Metrics a smaller value of which is better: their gain is control minus student, so that a positive
# gain always means the teacher helped.
LOWER_IS_BETTER = frozenset({"loss", "perplexity"})
CONTROL_SUFFIX = " (control)"


def create_control(session: Session, *, parent: Job, spec: JobSpec) -> Job:
    """Queue the control of a new job: its spec without the teacher's part, for the same tenant."""
    name = f"{parent.name[: 200 - len(CONTROL_SUFFIX)]}{CONTROL_SUFFIX}" if parent.name else None
    control = Job(
        tenant=parent.tenant,
        name=name,
        spec=spec.control_spec().model_dump(mode="json"),
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
        select(Job.id, Job.parent_id, Job.status, Job.result, Job.error).where(
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
    summary = control_summary(parent.result, control)
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


def control_summary(result: dict[str, Any], control: Row[Any]) -> dict[str, Any]:
    """The control's outcome and, once it succeeded, the gain of each metric on the parent's report split."""
    status = control.status if control.status in TERMINAL_STATUSES else "pending"
    summary: dict[str, Any] = {"job_id": control.id, "status": status}
    if status == JobStatus.FAILED and isinstance(control.error, dict):
        summary["error"] = {key: control.error.get(key) for key in ("code", "message", "type")}
    if status != JobStatus.SUCCEEDED or not isinstance(control.result, dict):
        return summary
    split = str(result.get("retention_split") or "eval")
    student, baseline = _metrics(result, split), _metrics(control.result, split)
    gain = {
        name: baseline[name] - value if name in LOWER_IS_BETTER else value - baseline[name]
        for name, value in student.items()
        if name in baseline
    }
    return {**summary, "split": split, "student_metrics": student, "control_metrics": baseline, "gain": gain}


def _metrics(result: dict[str, Any], split: str) -> dict[str, float]:
    """The student's numeric metrics on one split of a report."""
    metrics = (result.get("student") or {}).get(split) or {}
    return {
        name: float(value)
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def describe(summary: dict[str, Any]) -> str:
    """One log line for the control's outcome."""
    if summary["status"] != JobStatus.SUCCEEDED:
        reason = f": {summary['error']['message']}" if "error" in summary else ""
        return f"control {summary['job_id']} {summary['status']}{reason}; no gain to report"
    gains = ", ".join(f"{name} {value:+.4f}" for name, value in sorted(summary["gain"].items()))
    return f"gain over control {summary['job_id']} on {summary['split']}: {gains}"


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
