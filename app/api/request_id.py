"""Every request gets an id: the client's `X-Request-ID` when it is well formed, else a new one.

The id is echoed in the response's `X-Request-ID` and set in the logging context for the whole request,
so every line the API logs while serving it (uvicorn's access line too) carries it.
"""

import random
import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logs import request_id

HEADER = "X-Request-ID"
# Ids other systems generate (UUIDs, trace ids, base64): printable and short, so a log line stays one line.
WELL_FORMED = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def request_id_of(headers: Headers) -> str:
    """The client's request id when it is well formed; a fresh one otherwise."""
    given = headers.get(HEADER, "")
    # A random 128-bit number, as a UUID4 would be, without the cost of building a UUID object.
    return given if WELL_FORMED.fullmatch(given) else f"{random.getrandbits(128):032x}"


class RequestId:
    """ASGI middleware: sets the request id for the request's logs and echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        current = request_id_of(Headers(scope=scope))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = current
            await send(message)

        token = request_id.set(current)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
