"""Counts HTTP requests by method, route template and status, and times them.

The route is the template (`/v1/jobs/{job_id}`), never the raw path, so a label has a few values, not
one per job. A file of a mounted folder (the dashboard's assets, the API pages' own) is `/ui/{path}`;
a path nothing serves is `unmatched`. An event stream lives as long as its client follows, so its life
goes to a histogram of its own, with buckets up to hours, and never skews the requests' durations.
"""

import time
from collections.abc import Sequence

from fastapi.routing import iter_route_contexts
from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "unmatched"
STREAM_MEDIA_TYPE = b"text/event-stream"


class RouteTemplates:
    """The full path template of each route, found from the route that served a request or by matching.

    FastAPI includes routers lazily: the route in a request's scope carries its router's own path
    (`/jobs/{job_id}`), and `iter_route_contexts` gives the full one (`/v1/jobs/{job_id}`).
    """

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        # The live route list: routes added after the middleware are seen too.
        self.routes = routes
        self.by_route: dict[int, str] = {}

    def of(self, scope: Scope, arrived: Scope) -> str:
        """The template of the route that served the request, or of the first whose path matches it as it
        arrived (a mount rewrites the scope's paths for its own app)."""
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
            if context.matches(arrived)[0] != Match.NONE:
                return str(context.path_format)
        for route in self.routes:
            if isinstance(route, Mount) and route.matches(arrived)[0] != Match.NONE:
                return f"{route.path}/{{path}}"
        return UNMATCHED


class HttpMetrics:
    """ASGI middleware: one count and one duration per request; a request that raised counts as a 500."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        requests: Counter,
        durations: Histogram,
        stream_durations: Histogram,
        routes: Sequence[BaseRoute],
    ) -> None:
        self.app, self.requests, self.durations = app, requests, durations
        self.stream_durations = stream_durations
        self.templates = RouteTemplates(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, streaming = 500, False
        started, arrived = time.perf_counter(), dict(scope)

        async def tracked_send(message: Message) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = message["status"]
                content_type = dict(message.get("headers") or []).get(b"content-type", b"")
                streaming = content_type.startswith(STREAM_MEDIA_TYPE)
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        finally:
            route = self.templates.of(scope, arrived)
            self.requests.labels(scope["method"], route, str(status)).inc()
            histogram = self.stream_durations if streaming else self.durations
            histogram.labels(scope["method"], route).observe(time.perf_counter() - started)
