"""Route of the workers registry: which job workers run now and what they have (read-only)."""

from fastapi import APIRouter

from app.api.deps import SessionDep, SettingsDep
from app.api.errors import error_responses
from app.api.pagination import After, Limit, list_page
from app.api.session_route import SessionEndingRoute
from app.auth.deps import TenantDep
from app.core.base import utcnow
from app.workers import service
from app.workers.schemas import WorkerList, WorkerPublic

router = APIRouter(prefix="/workers", tags=["workers"], route_class=SessionEndingRoute)


@router.get("", summary="List workers", responses=error_responses(401, 422))
def list_workers(
    session: SessionDep, settings: SettingsDep, _tenant: TenantDep, limit: Limit = 20, after: After = None
) -> WorkerList:
    """List the live job workers: accelerator, devices, memory, free disk and software versions."""
    rows, has_more = service.page_of_live(
        session=session, settings=settings, now=utcnow(), limit=limit, after=after
    )
    return list_page(WorkerList, [WorkerPublic.from_row(row) for row in rows], has_more=has_more)
