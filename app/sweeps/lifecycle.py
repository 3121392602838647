"""The sweeps' side of the lifecycle seam: what a worker calls when a trial evaluates or a job ends.

Like app.jobs.lifecycle, each function takes plain data and opens its own transactions. None of them
may fail a job: a sweep that could not be advanced now is advanced by the next reconciler pass.
"""

import logging

from sqlalchemy import select

from app.core.config import Settings
from app.core.db import session_scope
from app.jobs.models import Job
from app.sweeps.driver import advance, advance_all
from app.sweeps.models import FINISHED_SWEEP, Sweep
from app.sweeps.pruning import check_trial
from app.sweeps.study import forget_connections, open_study
from distillery.jobspec.sweep import SweepSpec

logger = logging.getLogger(__name__)

__all__ = ["advance_all", "forget_connections", "job_ended", "trial_evaluated"]


def _sweep_of(job_id: str) -> str | None:
    with session_scope() as session:
        sweep_id: str | None = session.scalar(select(Job.sweep_id).where(Job.id == job_id))
        return sweep_id


def job_ended(*, job_id: str, settings: Settings) -> None:
    """After a job ended: advance its sweep, if it has one."""
    try:
        sweep_id = _sweep_of(job_id)
        if sweep_id is not None:
            advance(sweep_id=sweep_id, settings=settings)
    except Exception:
        logger.exception("could not advance the sweep of job %s; the reconciler will", job_id)


def trial_evaluated(*, job_id: str, settings: Settings) -> bool:
    """After a running job recorded eval metrics: report them to its trial; True when it was pruned."""
    try:
        if _sweep_of(job_id) is None:
            return False
        with session_scope() as session:
            job = session.get_one(Job, job_id)
            sweep = session.get(Sweep, job.sweep_id)
            if sweep is None or sweep.status in FINISHED_SWEEP or job.sweep_role != "trial":
                return False
            spec = SweepSpec.model_validate(sweep.spec)
            study = open_study(settings.database_url, sweep_id=sweep.id, spec=spec)
            return check_trial(session, study=study, spec=spec, job=job, database_url=settings.database_url)
    except Exception:
        logger.exception("could not report the evaluation of job %s to its sweep", job_id)
        return False
