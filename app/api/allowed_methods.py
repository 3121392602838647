"""`OPTIONS` and `405` from the whole route table: `Allow` lists every method a path supports.

Starlette answers 405 from the first route whose path matches, so a path served by several routes
(GET and DELETE of one job) advertised only one of them; it had no OPTIONS and no HEAD either.
"""

from collections.abc import Sequence

from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response

ROUTABLE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Set in the scope of a HEAD request run as a GET, for a route (a stream) that must not run its body.
HEAD_REQUEST = "distillery.head_request"


class AllowedMethods:
    """ASGI middleware: OPTIONS answers 204, HEAD runs GET without its body, a wrong method is a 405."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute]) -> None:
        # The live route list: routes added after the middleware are seen too.
        self.app, self.routes = app, routes

    def serves(self, scope: Scope, method: str) -> bool:
        """Whether a route serves this method on the request's path.

        Asked through `matches`, the one interface every route (included routers too) answers: a full
        match means the route serves that method on this path.
        """
        probe = {**scope, "method": method}
        return any(route.matches(probe)[0] == Match.FULL for route in self.routes)

    def allowed(self, scope: Scope) -> set[str]:
        """The methods the request's path supports; empty when no route matches it."""
        methods = {method for method in ROUTABLE_METHODS if self.serves(scope, method)}
        if "GET" in methods:
            methods.add("HEAD")
        return methods | {"OPTIONS"} if methods else methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        if method not in {"OPTIONS", "HEAD"} and self.serves(scope, method):
            await self.app(scope, receive, send)
            return
        allowed = self.allowed(scope)
        if not allowed:
            await self.app(scope, receive, send)  # no such path: the router's 404
            return
        headers = {"Allow": ", ".join(sorted(allowed))}
        if method == "OPTIONS":
            await options_response(scope, receive, send, headers)
        elif method == "HEAD" and "GET" in allowed:
            await self.app({**scope, "method": "GET", HEAD_REQUEST: True}, receive, _without_body(send))
        else:
            response = error_response(
                405, code="method_not_allowed", message=f"{method} is not allowed here", headers=headers
            )
            await response(scope, receive, send)


async def options_response(scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
    """An empty 204 carrying the Allow header."""
    await Response(status_code=204, headers=headers)(scope, receive, send)


def _without_body(send: Send) -> Send:
    """A send that keeps the status and headers (Content-Length included) and drops the body."""

    async def headless_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return headless_send
