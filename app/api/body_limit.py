"""Caps request bodies before they are parsed or spooled.

A declared Content-Length over the limit is refused at once; a chunked body is counted as it arrives.
"""

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import ApiError, error_response

# Room for the multipart boundaries and part headers around an uploaded file; the exact file limit is
# enforced again while the file is copied to the store.
MULTIPART_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class BodyLimit:
    """A body limit as the client is told it, the bytes actually allowed, and the error it answers."""

    max_bytes: int
    allowance: int = 0
    code: str = "request_too_large"
    param: str | None = None
    subject: str = "the request body"

    @property
    def max_received(self) -> int:
        """Bytes read before the request is refused."""
        return self.max_bytes + self.allowance

    def error(self) -> ApiError:
        """The 413 of a body past the limit."""
        message = f"{self.subject} is larger than the limit of {self.max_bytes} bytes"
        return ApiError(413, message, code=self.code, param=self.param)


def upload_limit(max_bytes: int) -> BodyLimit:
    """The limit of a multipart file upload: the file's bytes plus the multipart framing."""
    return BodyLimit(
        max_bytes, allowance=MULTIPART_OVERHEAD, code="file_too_large", param="file", subject="the file"
    )


class BodySizeLimit:
    """ASGI middleware: every request body is capped, by `default` or by the limit of its (POST) route."""

    def __init__(self, app: ASGIApp, *, default: BodyLimit, post_routes: dict[str, BodyLimit]) -> None:
        self.app, self.default, self.post_routes = app, default, post_routes

    def limit_for(self, scope: Scope) -> BodyLimit:
        """The limit of one request."""
        if scope["method"] == "POST":
            return self.post_routes.get(scope["path"].rstrip("/"), self.default)
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit.max_received:
            error = limit.error()
            response = error_response(413, code=error.code, message=error.message, param=error.param)
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_received:
                    # Raised inside body parsing; FastAPI re-raises HTTP exceptions, so this becomes a 413.
                    raise limit.error()
            return message

        await self.app(scope, counted_receive, send)
