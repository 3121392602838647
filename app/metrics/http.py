"""Counts HTTP requests by method, route template and status, and times them.

The route is the template (`/v1/jobs/{job_id}`), never the raw path, so a label has a few values, not
one per job. A path no route serves is `unmatched`.
"""

import time
from collections.abc import Sequence

from fastapi.routing import iter_route_contexts
from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"


class RouteTemplates:
    """The full path template of each route, found from the route that served a request or by matching.

    FastAPI includes routers lazily: the route in a request's scope carries its router's own path
    (`/jobs/{job_id}`), and `iter_route_contexts` gives the full one (`/v1/jobs/{job_id}`).
    """

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        # The live route list: routes added after the middleware are seen too.
        self.routes = routes
        self.by_route: dict[int, str] = {}

    def of(self, scope: Scope) -> str:
        """The template of the route that served the request, or of the first whose path matches it."""
        served = scope.get("route")
        if served is not None:
            if id(served) not in self.by_route:
                self.by_route = {
                    id(context.original_route): str(context.path_format)
                    for context in iter_route_contexts(self.routes)
                }
            if id(served) in self.by_route:
                return self.by_route[id(served)]
        # Answered before routing (a 405, an OPTIONS, a 413) or routed on a copy of the scope (a HEAD).
        for context in iter_route_contexts(self.routes):
            if context.matches(scope)[0] != Match.NONE:
                return str(context.path_format)
        return UNMATCHED


class HttpMetrics:
    """ASGI middleware: one count and one duration per request; a request that raised counts as a 500."""

    def __init__(
        self, app: ASGIApp, *, requests: Counter, durations: Histogram, routes: Sequence[BaseRoute]
    ) -> None:
        self.app, self.requests, self.durations = app, requests, durations
        self.templates = RouteTemplates(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def tracked_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        finally:
            route = self.templates.of(scope)
            self.requests.labels(scope["method"], route, str(status)).inc()
            self.durations.labels(scope["method"], route).observe(time.perf_counter() - started)
