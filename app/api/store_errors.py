"""An object store that fails after its client's retries answers 503 `store_unavailable` with Retry-After."""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.api.errors import error_response
from app.core.storage import StoreUnavailable

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5


async def _on_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("the object store failed on %s %s: %s", request.method, request.url.path, exc)
    return error_response(
        503,
        code="store_unavailable",
        message="the object store is unavailable; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install_store_error_handlers(app: FastAPI) -> None:
    """A transient store failure anywhere in a request is the store's, not a 500: the client may retry."""
    app.add_exception_handler(StoreUnavailable, _on_store_unavailable)
