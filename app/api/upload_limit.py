"""Stops reading an upload once it passes the size limit, before it is spooled to disk."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import ApiError, error_response

# Room for the multipart boundaries and part headers around the file itself; the exact file limit is
# enforced again while the file is copied to the store.
MULTIPART_OVERHEAD = 64 * 1024


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(
        413, f"the file is larger than the limit of {max_bytes} bytes", code="file_too_large", param="file"
    )


class UploadSizeLimit:
    """ASGI middleware for one upload route: refuses a large Content-Length at once, and counts the rest."""

    def __init__(self, app: ASGIApp, *, path: str, max_bytes: int) -> None:
        self.app, self.path, self.max_bytes = app, path, max_bytes
        self.max_request_bytes = max_bytes + MULTIPART_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_request_bytes:
            error = _too_large(self.max_bytes)
            response = error_response(413, code=error.code, message=error.message, param=error.param)
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_request_bytes:
                    # Raised inside body parsing; FastAPI re-raises HTTP exceptions, so this becomes a 413.
                    raise _too_large(self.max_bytes)
            return message

        await self.app(scope, counted_receive, send)
