"""With `events_retention_days` set, the reconciler deletes the events of jobs that ended before it, in
bounded passes, and keeps the jobs themselves; without it, events are kept for ever."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from api.arrange import add_events, finish_job
from sqlalchemy import func, select, update

from app.core.base import utcnow
from app.jobs.lifecycle import prune_events
from app.jobs.models import Job, JobEvent
from worker.event_pruning import EventPruning
from worker.reconciler import reconcile_once


def events_of(db_session: Any, job_id: str) -> int:
    db_session.rollback()  # a fresh snapshot: the pruning committed in its own session
    return int(db_session.scalar(select(func.count()).where(JobEvent.job_id == job_id)))


def ended_days_ago(db_session: Any, job_id: str, days: float) -> None:
    """A job that succeeded `days` ago, with a few events of its run."""
    add_events(db_session, job_id, 3)
    finish_job(db_session, job_id)
    finished = utcnow() - timedelta(days=days)
    db_session.execute(update(Job).where(Job.id == job_id).values(finished_at=finished))
    db_session.commit()


def test_the_reconciler_deletes_the_events_of_jobs_that_ended_before_the_retention(
    settings: Any, db_session: Any, create_job: Callable[..., dict[str, Any]], no_workers: None
) -> None:
    old, recent, running = (create_job()["id"] for _ in range(3))
    ended_days_ago(db_session, old, days=40)
    ended_days_ago(db_session, recent, days=10)
    add_events(db_session, running, 2)

    reconcile_once(settings.model_copy(update={"events_retention_days": 30}), pruning=EventPruning())

    assert events_of(db_session, old) == 0
    assert events_of(db_session, recent) > 0 and events_of(db_session, running) > 0
    kept = db_session.get(Job, old)
    assert kept is not None and kept.status == "succeeded"


def test_without_a_retention_every_event_is_kept(
    settings: Any, db_session: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    job_id = create_job()["id"]
    ended_days_ago(db_session, job_id, days=3650)
    before = events_of(db_session, job_id)

    assert settings.events_retention_days is None
    assert prune_events(settings=settings) == 0
    assert events_of(db_session, job_id) == before


def test_one_pass_prunes_a_bounded_number_of_jobs(
    settings: Any, db_session: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    jobs = [create_job()["id"] for _ in range(3)]
    for job_id in jobs:
        ended_days_ago(db_session, job_id, days=2)
    retention = settings.model_copy(update={"events_retention_days": 1})

    first = prune_events(settings=retention, jobs=2)

    assert sorted(events_of(db_session, job_id) == 0 for job_id in jobs) == [False, True, True]
    assert first == 2 * events_of(db_session, next(j for j in jobs if events_of(db_session, j)))
    assert prune_events(settings=retention, jobs=2) > 0
    assert prune_events(settings=retention, jobs=2) == 0


def test_after_a_pass_with_nothing_to_prune_the_reconciler_rests_before_looking_again(
    settings: Any, db_session: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    retention = settings.model_copy(update={"events_retention_days": 30})
    pruning = EventPruning(idle_seconds=3600)
    job_id = create_job()["id"]
    ended_days_ago(db_session, job_id, days=40)
    assert pruning.run(retention) > 0
    assert pruning.run(retention) == 0  # nothing left: rests from now on

    later = create_job()["id"]
    ended_days_ago(db_session, later, days=40)

    assert pruning.run(retention) == 0
    assert events_of(db_session, later) > 0
    assert EventPruning(idle_seconds=3600).run(retention) > 0  # a fresh look finds it
