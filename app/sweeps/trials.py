"""What a sweep's jobs say about its trials: status, parameters, objective value and eval curve."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.jobs.models import Job, JobEvent, JobStatus
from app.sweeps.models import SweepRole
from distillery.jobspec.sweep import SweepSpec

PRUNED = "pruned"
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING})


def trial_status(job: Job) -> str:
    """The job's status, except that a trial the pruner stopped shows `pruned`."""
    if job.status == JobStatus.CANCELLED and (job.error or {}).get("code") == PRUNED:
        return PRUNED
    return "running" if job.status == JobStatus.CANCELLING else str(job.status)


def objective_value(job: Job, metric: str) -> float | None:
    """A succeeded trial's objective: its kept student's eval metric."""
    if job.status != JobStatus.SUCCEEDED or not isinstance(job.result, dict):
        return None
    value = ((job.result.get("student") or {}).get("eval") or {}).get(metric)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def params_of(spec: SweepSpec, job: Job) -> dict[str, Any]:
    """The trial's parameters, read back from its job spec."""
    params = {}
    for key in spec.space():
        section, field = key.split(".", 1)
        params[key] = (job.spec.get(section) or {}).get(field)
    return params


def eval_curves(session: Session, *, job_ids: list[str], metric: str) -> dict[str, list[dict[str, float]]]:
    """Each job's eval metric at every evaluation it recorded, by step."""
    curves: dict[str, list[dict[str, float]]] = {job_id: [] for job_id in job_ids}
    if not job_ids:
        return curves
    rows = session.execute(
        select(JobEvent.job_id, JobEvent.data)
        .where(JobEvent.job_id.in_(job_ids), JobEvent.type == "metrics")
        .order_by(JobEvent.job_id, JobEvent.seq)
    )
    for job_id, data in rows:
        if not isinstance(data, dict) or data.get("split") != "eval":
            continue
        value = (data.get("metrics") or {}).get(metric)
        if isinstance(value, int | float):
            curves[job_id].append({"step": int(data.get("step") or 0), "value": float(value)})
    return curves


def sweep_jobs(session: Session, *, sweep_id: str) -> list[Job]:
    """Every job of a sweep, trials by number first."""
    statement = select(Job).where(Job.sweep_id == sweep_id).order_by(Job.trial_number, Job.created_at)
    return list(session.scalars(statement))


def trials_of(jobs: list[Job]) -> list[Job]:
    """The trial jobs among a sweep's jobs."""
    return [job for job in jobs if job.sweep_role == SweepRole.TRIAL]


def best_of(spec: SweepSpec, trials: list[Job]) -> Job | None:
    """The succeeded trial with the best objective on the eval split (the first on a tie)."""
    metric, direction = spec.metric()
    scored = [(objective_value(job, metric), job) for job in trials]
    ranked = [(value, job) for value, job in scored if value is not None]
    if not ranked:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    return max(ranked, key=lambda pair: (sign * pair[0], -(pair[1].trial_number or 0)))[1]


def views(session: Session, *, spec: SweepSpec, jobs: list[Job]) -> list[dict[str, Any]]:
    """The public view of every trial: number, job, status, parameters, value and eval curve."""
    metric, direction = spec.metric()
    trials = trials_of(jobs)
    curves = eval_curves(session, job_ids=[job.id for job in trials], metric=metric)
    out = []
    for job in trials:
        curve = curves[job.id]
        best_point = (
            (max if direction == "maximize" else min)(curve, key=lambda p: p["value"]) if curve else None
        )
        out.append(
            {
                "number": job.trial_number,
                "job_id": job.id,
                "status": trial_status(job),
                "params": params_of(spec, job),
                "value": objective_value(job, metric),
                "best_step": int(best_point["step"]) if best_point else None,
                "eval_curve": curve,
            }
        )
    return out
