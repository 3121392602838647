"""Every route of the service, versioned API under /v1 and probes at the root."""

from fastapi import APIRouter, Depends

from app.api import health
from app.api.errors import error_responses
from app.api.query_params import reject_unknown_query_parameters
from app.files import endpoints as files
from app.jobs import endpoints as jobs
from app.metrics import endpoints as metrics
from app.sweeps import endpoints as sweeps
from app.webhooks import endpoints as webhooks
from app.workers import endpoints as workers

# Every /v1 route reads the database (the API key at least), so every one may answer 503.
api_router = APIRouter(
    prefix="/v1",
    responses=error_responses(503),
    dependencies=[Depends(reject_unknown_query_parameters)],
)
api_router.include_router(files.router)
api_router.include_router(jobs.router)
api_router.include_router(sweeps.router)
api_router.include_router(webhooks.router)
api_router.include_router(workers.router)

root_router = APIRouter()
root_router.include_router(health.router)
root_router.include_router(metrics.router)
root_router.include_router(api_router)
