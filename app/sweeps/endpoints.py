"""Routes of recipe sweeps: create, list, read, cancel and delete."""

import logging
from typing import Annotated

from fastapi import APIRouter, Body, Path

from app.api.deleted import Deleted
from app.api.deps import SessionDep, SettingsDep, StoreDep
from app.api.errors import error_responses
from app.api.pagination import After, Limit, list_page
from app.api.session_route import SessionEndingRoute
from app.auth.deps import TenantDep
from app.core.config import Settings
from app.sweeps import driver, service, study
from app.sweeps.schemas import SweepCreate, SweepList, SweepPublic
from distillery.jobspec.text import ResourceId

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/sweeps", tags=["sweeps"], route_class=SessionEndingRoute)

SweepId = Annotated[ResourceId, Path(description="The sweep's id, e.g. `swp_3f9a1b2c...`.")]
SWEEP_EXAMPLES = {
    "preset": {
        "summary": "A response-KD classifier, searched with the recommended preset",
        "value": {
            "name": "sentiment recipe",
            "base": {
                "teacher": {"path": "bert-sentiment"},
                "student": {"init": "teacher_layers", "layers": [0, 2]},
                "data": {"train_file": "file_train", "test_file": "file_test"},
                "method": {"type": "response"},
                "training": {"epochs": 2},
            },
            "search": "preset:response-classifier",
            "budget": {"max_trials": 12, "max_parallel": 1},
        },
    },
    "space": {
        "summary": "An explicit search space with TPE and successive halving",
        "value": {
            "base": {
                "teacher": {"path": "bert-sentiment"},
                "data": {"train_file": "file_train", "test_file": "file_test"},
                "method": {"type": "response"},
            },
            "search": {
                "method.temperature": {"low": 1, "high": 8, "log": True},
                "method.alpha": {"low": 0.1, "high": 0.9},
                "student.layers": [[0, 2], [0, 1, 2]],
            },
            "objective": {"metric": "accuracy", "direction": "maximize"},
            "control": "same_init",
        },
    },
}


@router.post("", status_code=201, summary="Create a sweep", responses=error_responses(400, 401, 413, 422))
def create_sweep(
    sweep_in: Annotated[SweepCreate, Body(openapi_examples=SWEEP_EXAMPLES)],  # type: ignore[arg-type]
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
) -> SweepPublic:
    """Validate a sweep and its search space against the base job, and start its first trials."""
    sweep = service.create_sweep(session=session, tenant=tenant, sweep_in=sweep_in, settings=settings)
    session.commit()
    _advance(sweep.id, settings)
    session.refresh(sweep)
    return service.public(session, sweep)


def _advance(sweep_id: str, settings: Settings) -> None:
    """Advance a committed sweep now; if this fails, the workers' reconciler does it on its next pass."""
    try:
        driver.advance(sweep_id=sweep_id, settings=settings)
    except Exception:
        logger.exception("could not advance sweep %s; the reconciler will", sweep_id)


@router.get("", summary="List sweeps", responses=error_responses(401, 422))
def list_sweeps(session: SessionDep, tenant: TenantDep, limit: Limit = 20, after: After = None) -> SweepList:
    """List sweeps, newest first."""
    sweeps, has_more = service.list_sweeps(session=session, tenant=tenant, limit=limit, after=after)
    return list_page(SweepList, [service.public(session, sweep) for sweep in sweeps], has_more=has_more)


@router.get("/{sweep_id}", summary="Get a sweep", responses=error_responses(401, 404, 422))
def get_sweep(sweep_id: SweepId, session: SessionDep, tenant: TenantDep) -> SweepPublic:
    """Get a sweep's stage, its trials with their parameters and eval curves, and its report."""
    return service.public(session, service.get_sweep(session=session, tenant=tenant, sweep_id=sweep_id))


@router.post("/{sweep_id}/cancel", summary="Cancel a sweep", responses=error_responses(401, 404, 409, 422))
def cancel_sweep(
    sweep_id: SweepId, session: SessionDep, tenant: TenantDep, settings: SettingsDep
) -> SweepPublic:
    """Cancel a sweep: its queued jobs at once, its running ones at their next step."""
    sweep = service.cancel_sweep(session=session, tenant=tenant, sweep_id=sweep_id)
    session.commit()
    _advance(sweep.id, settings)
    session.refresh(sweep)
    return service.public(session, sweep)


@router.delete("/{sweep_id}", summary="Delete a sweep", responses=error_responses(401, 404, 409, 422, 503))
def delete_sweep(
    sweep_id: SweepId, session: SessionDep, tenant: TenantDep, store: StoreDep, settings: SettingsDep
) -> Deleted:
    """Delete a finished sweep with its jobs, their files and its optimiser's study."""
    folders = service.delete_sweep(session=session, tenant=tenant, sweep_id=sweep_id)
    # The files go first: if the store is down the rows stay (503), and a retry deletes both.
    for folder in folders:
        store.delete(folder)
    session.commit()
    study.delete_study(settings.database_url, sweep_id=sweep_id)
    return Deleted(id=sweep_id, object="sweep")
