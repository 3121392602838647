"""Sweeps: create (after checking the base job and every corner of the search space), read, cancel, delete.

Functions take keyword arguments, flush and never commit: the request owns the transaction. The
driver (`app.sweeps.driver`) runs the trials once the sweep is committed.
"""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.errors import ApiError, Conflict, InvalidField, NotFound
from app.api.pagination import page_newest_first
from app.core.config import Settings
from app.jobs import service as jobs_service
from app.jobs.models import TERMINAL_STATUSES
from app.sweeps.models import FINISHED_SWEEP, Sweep, SweepStatus
from app.sweeps.schemas import SweepCreate, SweepPublic
from app.sweeps.trials import ACTIVE, best_of, params_of, sweep_jobs, views
from distillery.jobspec.sweep import SweepSpec


def create_sweep(*, session: Session, tenant: str, sweep_in: SweepCreate, settings: Settings) -> Sweep:
    """Store a sweep whose base job and every choice and range end pass the checks POST /v1/jobs makes."""
    _check(
        lambda: jobs_service.check_references(
            session=session, tenant=tenant, spec=sweep_in.base, settings=settings
        ),
        "base",
    )
    if sweep_in.control != "none":
        controlled = sweep_in.controlled(sweep_in.base)
        _check(
            lambda: jobs_service.check_references(
                session=session, tenant=tenant, spec=controlled, settings=settings
            ),
            "base",
        )
    for key, corner in sweep_in.corner_specs():
        _check(
            lambda corner=corner: jobs_service.check_references(  # type: ignore[misc]
                session=session, tenant=tenant, spec=corner, settings=settings
            ),
            f"search.{key}",
            whole=True,
        )
    spec = sweep_in.model_dump(mode="json", exclude={"name", "metadata"})
    sweep = Sweep(
        tenant=tenant, name=sweep_in.name, spec=spec, metadata_=sweep_in.metadata, status=SweepStatus.RUNNING
    )
    session.add(sweep)
    session.flush()
    return sweep


def _check(check: Any, prefix: str, *, whole: bool = False) -> None:
    """Run a job check, naming the sweep's field in its error: `base.<field>`, or the dimension itself."""
    try:
        check()
    except InvalidField as error:
        param = prefix if whole else f"{prefix}.{error.param}"
        raise InvalidField(param, error.message, code=error.code) from None


def get_sweep(*, session: Session, tenant: str, sweep_id: str) -> Sweep:
    """A sweep of the tenant; 404 for a missing sweep and for another tenant's."""
    sweep = session.scalar(select(Sweep).where(Sweep.id == sweep_id, Sweep.tenant == tenant))
    if sweep is None:
        raise NotFound("sweep", sweep_id)
    return sweep


def public(session: Session, sweep: Sweep) -> SweepPublic:
    """The public view of a sweep: its trials read from its jobs and their eval events."""
    spec = SweepSpec.model_validate(sweep.spec)
    jobs = sweep_jobs(session, sweep_id=sweep.id)
    trial_views = views(session, spec=spec, jobs=jobs)
    best = best_of(spec, [job for job in jobs if job.sweep_role == "trial"])
    best_view = None
    if best is not None:
        value = next((trial["value"] for trial in trial_views if trial["job_id"] == best.id), None)
        best_view = {
            "number": best.trial_number,
            "job_id": best.id,
            "value": value,
            "params": params_of(spec, best),
        }
    return SweepPublic.from_row(sweep, trials=trial_views, best=best_view)


def list_sweeps(*, session: Session, tenant: str, limit: int, after: str | None) -> tuple[list[Sweep], bool]:
    """A page of the tenant's sweeps, newest first, and whether more follow."""
    statement = select(Sweep).where(Sweep.tenant == tenant)
    return page_newest_first(session, statement, entity=Sweep, tenant=tenant, limit=limit, after=after)


def cancel_sweep(*, session: Session, tenant: str, sweep_id: str) -> Sweep:
    """Cancel a running sweep's queued and running jobs; it ends cancelled once they have stopped."""
    sweep = get_sweep(session=session, tenant=tenant, sweep_id=sweep_id)
    if sweep.status in FINISHED_SWEEP:
        raise Conflict(f"sweep '{sweep_id}' is already {sweep.status}", code="sweep_finished")
    sweep.status = SweepStatus.CANCELLING.value
    for job in sweep_jobs(session, sweep_id=sweep_id):
        if job.status in ACTIVE:
            try:
                jobs_service.cancel_job(session=session, tenant=tenant, job_id=job.id)
            except ApiError:  # it ended meanwhile
                continue
    session.flush()
    return sweep


def delete_sweep(*, session: Session, tenant: str, sweep_id: str) -> list[str]:
    """Delete a finished sweep and its jobs' rows; returns their store folders, to remove after commit."""
    sweep = get_sweep(session=session, tenant=tenant, sweep_id=sweep_id)
    if sweep.status not in FINISHED_SWEEP:
        raise Conflict(
            f"sweep '{sweep_id}' is {sweep.status}; cancel it first, then delete it",
            code="sweep_not_finished",
        )
    jobs = sweep_jobs(session, sweep_id=sweep_id)
    ids = {job.id for job in jobs}
    users = [
        other for other, spec in jobs_service.active_specs(session=session, tenant=tenant)
        if other not in ids and ids & jobs_service.job_refs(spec)
    ]  # fmt: skip
    if users:
        raise Conflict(
            f"unfinished job(s) {', '.join(users)} use a student of this sweep", code="sweep_in_use"
        )
    for job in jobs:
        if job.status not in TERMINAL_STATUSES:
            raise Conflict(f"job '{job.id}' of the sweep is {job.status}", code="sweep_not_finished")
        session.delete(job)
    session.flush()
    session.delete(sweep)
    session.flush()
    return [f"jobs/{job.id}" for job in jobs]
