"""One pass over a sweep, under its lease: the trials stage, then the test, the control and the report."""

import logging
from typing import Any

import optuna
from optuna.trial import TrialState
from sqlalchemy.orm import Session

from app.api.errors import ApiError
from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import session_scope
from app.jobs import service as jobs_service
from app.jobs.models import TERMINAL_STATUSES, Job, JobStatus
from app.jobs.schemas import JobCreate
from app.sweeps import final_stage
from app.sweeps.models import Sweep, SweepRole, SweepStage, SweepStatus
from app.sweeps.pruning import check_trial, report_curve
from app.sweeps.study import decode, distributions, grid_size, open_study, storage
from app.sweeps.trials import ACTIVE, PRUNED, best_of, eval_curves, objective_value, sweep_jobs, trials_of
from distillery.jobspec import JobSpec
from distillery.jobspec.sweep import SweepSpec

logger = logging.getLogger(__name__)


def run_pass(*, sweep_id: str, settings: Settings) -> list[str]:
    """Advance the sweep one step in one transaction; returns the ids of the jobs it queued."""
    with session_scope() as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None or sweep.status not in (SweepStatus.RUNNING, SweepStatus.CANCELLING):
            return []
        jobs = sweep_jobs(session, sweep_id=sweep_id)
        if sweep.status == SweepStatus.CANCELLING:
            if not any(job.status in ACTIVE for job in jobs):
                _end(sweep, SweepStatus.CANCELLED)
            return []
        spec = SweepSpec.model_validate(sweep.spec)
        study = open_study(settings.database_url, sweep_id=sweep_id, spec=spec)
        try:
            created = _stage(session, sweep=sweep, spec=spec, study=study, jobs=jobs, settings=settings)
        except ApiError as refused:
            # A job the sweep needs no longer passes the checks (a file or model deleted meanwhile).
            where = f" ({refused.param})" if refused.param else ""
            _end(sweep, SweepStatus.FAILED, error=f"could not queue its next job: {refused.message}{where}")
            return []
        session.flush()
        return [job.id for job in created]


def _stage(
    session: Session,
    *,
    sweep: Sweep,
    spec: SweepSpec,
    study: optuna.Study,
    jobs: list[Job],
    settings: Settings,
) -> list[Job]:
    """The work of the sweep's current stage; returns the jobs it queued."""
    if sweep.stage == SweepStage.TRIALS:
        return _trials_stage(session, sweep=sweep, spec=spec, study=study, jobs=jobs, settings=settings)
    return _final_stages(session, sweep=sweep, spec=spec, jobs=jobs, settings=settings)


def _trials_stage(
    session: Session,
    *,
    sweep: Sweep,
    spec: SweepSpec,
    study: optuna.Study,
    jobs: list[Job],
    settings: Settings,
) -> list[Job]:
    """Tell ended trials, check running ones for pruning, ask for more; move on once all have ended."""
    trials = trials_of(jobs)
    teller = open_study(settings.database_url, sweep_id=sweep.id, spec=spec, telling=True)
    _tell_ended(teller, spec=spec, trials=trials, session=session, database_url=settings.database_url)
    for job in trials:
        check_trial(session, study=study, spec=spec, job=job, database_url=settings.database_url)
    created = _orphans(session, sweep=sweep, spec=spec, study=study, trials=trials, settings=settings)
    limit = min(spec.budget.max_trials, grid_size(spec)) if spec.sampler == "grid" else spec.budget.max_trials
    active = sum(job.status in ACTIVE for job in trials) + len(created)
    asked = len(study.get_trials(deepcopy=False))
    while active < spec.budget.max_parallel and asked < limit:
        trial = study.ask(distributions(spec))
        created.append(
            _trial_job(
                session, sweep=sweep, spec=spec, number=trial.number, params=trial.params, settings=settings
            )
        )
        active, asked = active + 1, asked + 1
    if created or active or asked < limit:
        return created
    best = best_of(spec, trials)
    if best is None:
        _end(sweep, SweepStatus.FAILED, error="no trial succeeded: nothing to select")
        sweep.report = final_stage.report(spec, jobs=jobs, best=None)
        return []
    sweep.stage = SweepStage.TEST
    return _final_stages(session, sweep=sweep, spec=spec, jobs=jobs, settings=settings)


def _tell_ended(
    study: optuna.Study, *, spec: SweepSpec, trials: list[Job], session: Session, database_url: str
) -> None:
    """Tell Optuna the outcome of every trial whose job ended: its eval objective, pruned, or failed."""
    metric, _ = spec.metric()
    states = {trial.number: trial for trial in study.get_trials(deepcopy=False)}
    for job in trials:
        frozen = states.get(job.trial_number) if job.trial_number is not None else None
        if frozen is None or frozen.state != TrialState.RUNNING or job.status not in TERMINAL_STATUSES:
            continue
        value = objective_value(job, metric)
        if (job.error or {}).get("code") == PRUNED:
            curve = eval_curves(session, job_ids=[job.id], metric=metric)[job.id]
            report_curve(study, store=storage(database_url), trial_id=frozen._trial_id, curve=curve)
            study.tell(frozen.number, state=TrialState.PRUNED)
        elif value is not None:
            study.tell(frozen.number, value)
        else:
            study.tell(frozen.number, state=TrialState.FAIL)


def _orphans(
    session: Session,
    *,
    sweep: Sweep,
    spec: SweepSpec,
    study: optuna.Study,
    trials: list[Job],
    settings: Settings,
) -> list[Job]:
    """Jobs for trials Optuna handed out whose job was never stored (a pass that stopped in between)."""
    numbers = {job.trial_number for job in trials}
    return [
        _trial_job(
            session, sweep=sweep, spec=spec, number=trial.number, params=trial.params, settings=settings
        )
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if trial.number not in numbers
    ]


def _trial_job(
    session: Session,
    *,
    sweep: Sweep,
    spec: SweepSpec,
    number: int,
    params: dict[str, Any],
    settings: Settings,
) -> Job:
    """Queue trial `number` as an ordinary job of the tenant."""
    job_spec = spec.trial_spec(decode(spec, params))
    return _queue(session, sweep=sweep, spec=job_spec, role=SweepRole.TRIAL, number=number, settings=settings)


def _queue(
    session: Session,
    *,
    sweep: Sweep,
    spec: JobSpec,
    role: SweepRole,
    settings: Settings,
    number: int | None = None,
) -> Job:
    """A job of the sweep, through the same path as POST /v1/jobs (checks, events, webhooks, scheduling)."""
    label = sweep.name or sweep.id
    name = f"{label} trial {number}" if role == SweepRole.TRIAL else f"{label} {role.value}"
    job_in = JobCreate.model_validate({**spec.model_dump(mode="json"), "name": name[:200]})
    job, _ = jobs_service.create_job(session=session, tenant=sweep.tenant, job_in=job_in, settings=settings)
    job.sweep_id, job.sweep_role, job.trial_number = sweep.id, role.value, number
    session.flush()
    return job


def _final_stages(
    session: Session, *, sweep: Sweep, spec: SweepSpec, jobs: list[Job], settings: Settings
) -> list[Job]:
    """The best trial on the test split once, then its control, then the report."""
    best = best_of(spec, trials_of(jobs))
    assert best is not None  # the trials stage moves on only with one
    by_role = {job.sweep_role: job for job in jobs if job.sweep_role != SweepRole.TRIAL}
    if sweep.stage == SweepStage.TEST:
        test_spec = final_stage.test_spec(spec, best)
        if test_spec is not None and SweepRole.TEST not in by_role:
            return [_queue(session, sweep=sweep, spec=test_spec, role=SweepRole.TEST, settings=settings)]
        test_job = by_role.get(SweepRole.TEST)
        if test_job is not None and test_job.status not in TERMINAL_STATUSES:
            return []
        sweep.stage = SweepStage.CONTROL
    control_spec = final_stage.control_spec(spec, best, session=session, tenant=sweep.tenant)
    if control_spec is not None and SweepRole.CONTROL not in by_role:
        return [_queue(session, sweep=sweep, spec=control_spec, role=SweepRole.CONTROL, settings=settings)]
    control_job = by_role.get(SweepRole.CONTROL)
    if control_job is not None and control_job.status not in TERMINAL_STATUSES:
        return []
    sweep.report = final_stage.report(spec, jobs=jobs, best=best)
    failed = [job for job in by_role.values() if job.status != JobStatus.SUCCEEDED]
    if failed:
        _end(sweep, SweepStatus.FAILED, error=f"{failed[0].sweep_role} job {failed[0].id} {failed[0].status}")
    else:
        _end(sweep, SweepStatus.SUCCEEDED)
    return []


def _end(sweep: Sweep, status: SweepStatus, *, error: str | None = None) -> None:
    sweep.status, sweep.stage = status.value, SweepStage.DONE.value
    sweep.finished_at = sweep.updated_at = utcnow()
    if error is not None:
        sweep.error = {"code": "sweep_failed", "message": error}
    logger.info("sweep %s %s%s", sweep.id, status.value, f": {error}" if error else "")
