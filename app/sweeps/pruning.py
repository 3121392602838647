"""Early stopping of a trial: its eval metrics go to its Optuna trial, and the pruner may stop it.

A pruned trial is cancelled like a user's cancel (the same compare-and-set, running -> cancelling) with
`error.code = "pruned"`: its worker stops at the next step and the job ends `cancelled`, the error kept.
"""

import logging

import optuna
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.jobs.events import append_event
from app.jobs.models import Job, JobStatus
from app.jobs.transitions import IllegalTransition, transition
from app.sweeps.study import storage
from app.sweeps.trials import PRUNED, eval_curves
from distillery.jobspec.sweep import SweepSpec

logger = logging.getLogger(__name__)


def report_curve(
    study: optuna.Study, *, store: optuna.storages.BaseStorage, trial_id: int, curve: list[dict[str, float]]
) -> None:
    """Report each evaluation not reported yet to the trial (a running one only: Optuna refuses others)."""
    frozen = store.get_trial(trial_id)
    if frozen.state != optuna.trial.TrialState.RUNNING:
        return
    trial = optuna.trial.Trial(study, trial_id)
    for point in curve:
        if int(point["step"]) not in frozen.intermediate_values:
            trial.report(point["value"], int(point["step"]))


def check_trial(
    session: Session, *, study: optuna.Study, spec: SweepSpec, job: Job, database_url: str
) -> bool:
    """Report a running trial's evaluations; cancel it as pruned when the pruner says so. True if pruned."""
    if job.trial_number is None or job.status != JobStatus.RUNNING:
        return False
    metric, _ = spec.metric()
    curve = eval_curves(session, job_ids=[job.id], metric=metric)[job.id]
    if not curve:
        return False
    store = storage(database_url)
    study_id = store.get_study_id_from_name(study.study_name)
    trial_id = store.get_trial_id_from_study_id_trial_number(study_id, job.trial_number)
    report_curve(study, store=store, trial_id=trial_id, curve=curve)
    if spec.pruner == "none" or not optuna.trial.Trial(study, trial_id).should_prune():
        return False
    last = curve[-1]
    message = f"pruned at step {int(last['step'])}: eval {metric} {last['value']:.4g} trails the other trials"
    return cancel_pruned(session, job=job, message=message)


def cancel_pruned(session: Session, *, job: Job, message: str) -> bool:
    """Ask the trial's worker to stop, recording why; False when the job is no longer running."""
    now = utcnow()
    error = {"code": PRUNED, "message": message, "type": "user", "param": None}
    try:
        transition(
            session,
            job_id=job.id,
            target=JobStatus.CANCELLING,
            sources=[JobStatus.RUNNING],
            values={"cancel_requested_at": now, "error": error},
        )
    except IllegalTransition:
        return False
    append_event(session, job_id=job.id, type="status", message=message, data={"status": "cancelling"})
    logger.info("sweep %s: job %s %s", job.sweep_id, job.id, message)
    return True
