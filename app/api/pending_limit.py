"""Bounds the requests one API process holds before answering, so real overload answers 503, not a hang.

A request counts from its arrival until its response starts: an event stream stops counting once it
is open. Past the bound, a request gets 503 `server_busy` with Retry-After at once; probes and metrics
are never refused, so an orchestrator does not restart a process for being busy.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response

RETRY_AFTER_SECONDS = 1
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class PendingRequestLimit:
    """ASGI middleware: at most `max_pending` requests wait for their response to start."""

    def __init__(self, app: ASGIApp, *, max_pending: int) -> None:
        self.app, self.max_pending = app, max_pending
        self.pending = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if self.pending >= self.max_pending:
            response = error_response(
                503,
                code="server_busy",
                message="the API has more requests in progress than it accepts; retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await response(scope, receive, send)
            return
        self.pending += 1
        counted = True

        async def send_and_release(message: Message) -> None:
            nonlocal counted
            if counted and message["type"] == "http.response.start":
                counted = False
                self.pending -= 1
            await send(message)

        try:
            await self.app(scope, receive, send_and_release)
        finally:
            if counted:
                self.pending -= 1
