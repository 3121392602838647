"""Advancing a sweep: tell Optuna how ended trials did, start new ones, then the final stage and report.

A pass is idempotent and one runs at a time per sweep: it first takes the sweep's short lease with a
compare-and-set (`advancing_until`), so an API request, a worker whose trial ended and the reconciler
may all ask for one. An Optuna trial asked but whose job was never stored (a crash in between) gets
its job on the next pass; a job's end that a busy pass missed is seen by the holder's next round.
"""

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import session_scope
from app.jobs.models import Job
from app.jobs.queue import publish_job
from app.sweeps.models import FINISHED_SWEEP, Sweep
from app.sweeps.passes import run_pass

logger = logging.getLogger(__name__)
LEASE_SECONDS = 120
ROUNDS = 5


def advance(*, sweep_id: str, settings: Settings) -> None:
    """Advance one sweep as far as it goes now, and send the jobs it created to the workers."""
    if not _take_lease(sweep_id):
        return
    try:
        for _ in range(ROUNDS):
            started = utcnow()
            created = run_pass(sweep_id=sweep_id, settings=settings)
            for job_id in created:
                _publish(job_id)
            if not created and not _ended_since(sweep_id, started):
                break
    finally:
        _release_lease(sweep_id)


def advance_all(*, settings: Settings) -> None:
    """Advance every unfinished sweep: the reconciler's pass, so a sweep survives any restart."""
    with session_scope() as session:
        ids = list(
            session.scalars(select(Sweep.id).where(Sweep.status.not_in([s.value for s in FINISHED_SWEEP])))
        )
    for sweep_id in ids:
        try:
            advance(sweep_id=sweep_id, settings=settings)
        except Exception:
            logger.exception("could not advance sweep %s", sweep_id)


def _take_lease(sweep_id: str) -> bool:
    now = utcnow()
    with session_scope() as session:
        taken = session.execute(
            update(Sweep)
            .where(
                Sweep.id == sweep_id,
                Sweep.status.not_in([s.value for s in FINISHED_SWEEP]),
                or_(Sweep.advancing_until.is_(None), Sweep.advancing_until < now),
            )
            .values(advancing_until=now + timedelta(seconds=LEASE_SECONDS))
            .execution_options(synchronize_session=False)
        )
        return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


def _release_lease(sweep_id: str) -> None:
    with session_scope() as session:
        session.execute(
            update(Sweep)
            .where(Sweep.id == sweep_id)
            .values(advancing_until=None)
            .execution_options(synchronize_session=False)
        )


def _ended_since(sweep_id: str, since: datetime) -> bool:
    """Whether a job of the sweep ended while the pass ran (its end's own advance found the lease taken)."""
    with session_scope() as session:
        found = session.scalar(
            select(Job.id).where(Job.sweep_id == sweep_id, Job.finished_at >= since).limit(1)
        )
        return found is not None


def _publish(job_id: str) -> None:
    """Send a committed job; stored as queued, the reconciler sends it if this fails."""
    try:
        publish_job(job_id)
    except Exception as error:
        logger.warning("could not publish job %s (%s); the reconciler will", job_id, type(error).__name__)
