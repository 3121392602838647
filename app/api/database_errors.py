"""A database outage answers 503 with Retry-After, and logs one warning per outage, not one per request.

A wait for a pooled connection that times out while the database answers is not an outage: it answers
503 `database_busy`, so a client and an operator can tell a saturated API from a database that is down.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, event
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from app.api.errors import error_response
from app.core.db import UNREACHABLE_ERRORS
from app.core.outage import OutageLog

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
BUSY_RETRY_AFTER_SECONDS = 1


def install_database_error_handlers(app: FastAPI, *engines: Engine) -> None:
    """Answer 503 while the engines' database is unreachable; a connection that succeeds ends the outage."""
    outage = OutageLog(logger, what="the database")
    app.state.database_outage = outage

    def _answered(_connection: Any) -> None:
        outage.answered()

    for engine in engines:
        event.listen(engine, "engine_connect", _answered)

    async def _on_database_unreachable(request: Request, exc: Exception) -> JSONResponse:
        outage.failed(exc)
        return error_response(
            503,
            code="database_unavailable",
            message="the database is unreachable; retry later",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    async def _on_pool_timeout(request: Request, exc: Exception) -> JSONResponse:
        if outage.is_down:
            return await _on_database_unreachable(request, exc)
        logger.warning("no pooled database connection within the timeout: the pool is saturated")
        return error_response(
            503,
            code="database_busy",
            message="every database connection of this API process is in use; retry shortly",
            headers={"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
        )

    for error_class in UNREACHABLE_ERRORS:
        app.add_exception_handler(error_class, _on_database_unreachable)
    app.add_exception_handler(PoolTimeoutError, _on_pool_timeout)
