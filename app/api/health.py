"""Liveness and readiness probes."""

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine, text

from app.api.errors import error_response, error_responses
from app.core.celery import celery_app

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Every dependency answered."""

    status: Literal["ready"] = "ready"
    checks: dict[str, Literal["ok"]]


@router.get("/healthz", summary="Liveness")
def healthz() -> Health:
    """Answer while the process is alive; touches no dependency."""
    return Health()


@router.get("/readyz", summary="Readiness", response_model=Readiness, responses=error_responses(503))
def readyz(request: Request) -> Readiness | JSONResponse:
    """Check that the database and the broker answer within two seconds each."""
    engine: Engine = request.app.state.engine
    broker_url: str = request.app.state.settings.broker_url
    checks: dict[str, Callable[[], None]] = {
        "database": lambda: _check_database(engine),
        "broker": lambda: _check_broker(broker_url),
    }
    failed = _failed_checks(checks)
    if failed:
        return error_response(503, code="not_ready", message=f"unreachable: {', '.join(failed)}")
    return Readiness(checks=dict.fromkeys(checks, "ok"))


def _failed_checks(checks: dict[str, Callable[[], None]]) -> list[str]:
    """Run the checks side by side; the names of those that raised or ran past the timeout."""
    pool = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="readyz")
    futures = {name: pool.submit(check) for name, check in checks.items()}
    failed = []
    for name, future in futures.items():
        try:
            future.result(timeout=CHECK_TIMEOUT_SECONDS)
        except FutureTimeout:
            logger.warning("readiness: %s did not answer within %.0fs", name, CHECK_TIMEOUT_SECONDS)
            failed.append(name)
        except Exception as error:
            logger.warning("readiness: %s is unreachable: %s", name, error)
            failed.append(name)
    # A check stuck on the network keeps its thread; the probe answers anyway.
    pool.shutdown(wait=False)
    return failed


def _check_database(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _check_broker(url: str) -> None:
    with celery_app.connection_for_write(url, connect_timeout=CHECK_TIMEOUT_SECONDS) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=CHECK_TIMEOUT_SECONDS)
