"""Turns an exception that escaped every handler into the standard 500, keeping the connection open.

Starlette's outermost error middleware sends its 500 and then re-raises, which makes the server drop a
keep-alive connection; this middleware sits inside it and answers without re-raising.
"""

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response

logger = logging.getLogger(__name__)
INTERNAL_ERROR_MESSAGE = "an unexpected error occurred; it was logged"


class CatchUnexpected:
    """ASGI middleware: an escaped exception becomes a logged 500, unless the response had started."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception:
            if started:
                # Half a response is out: nothing valid can follow, so the server must close the connection.
                raise
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            response = error_response(500, code="internal_error", message=INTERNAL_ERROR_MESSAGE)
            await response(scope, receive, send)
