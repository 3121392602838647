"""One connection to a job's Server-Sent Events stream, read with httpx-sse, and why it can end early.

The reconnecting loop is `DistilleryClient.stream_events`; this module reads one connection and tells
a stream the server cannot give (an older server, a proxy that rewrites or holds back the stream) from
a connection that dropped (worth resuming with `Last-Event-ID`).
"""

from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

from distillery.client.errors import ApiError, DistilleryError

# The server sends a keep-alive comment every 15 s: silence for three of them means the stream is held up.
STREAM_READ_TIMEOUT = 45.0
# An older server has no such route (404) or no GET on it (405); a proxy may refuse the media type.
UNAVAILABLE_STATUSES = frozenset({404, 405, 406, 501})


class StreamUnavailableError(DistilleryError):
    """The job's events cannot be streamed here; following them by polling still works."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return f"the event stream is not available: {self.reason}"


def read_stream(http: httpx.Client, path: str, *, after: int | None) -> Iterator[dict[str, Any]]:
    """The events one connection delivers, each the JSON of one item of the job's events list.

    Raises StreamUnavailableError as above, ApiError for another error answer (401, 503...), and
    httpx's TransportError when the connection drops (resume with the last id).
    """
    headers = {"Last-Event-ID": str(after)} if after is not None else {}
    timeout = httpx.Timeout(http.timeout.connect, read=STREAM_READ_TIMEOUT)
    response: httpx.Response | None = None
    try:
        with connect_sse(http, "GET", path, headers=headers, timeout=timeout) as source:
            response = source.response
            if response.status_code in UNAVAILABLE_STATUSES:
                raise StreamUnavailableError(f"the server answered {response.status_code} to {path}")
            if response.is_error:
                response.read()
                raise ApiError.from_response(response)
            for message in source.iter_sse():
                if message.data:
                    yield message.json()
    except SSEError as error:
        raise StreamUnavailableError(str(error)) from error
    except httpx.ReadTimeout as error:
        if response is None or response.num_bytes_downloaded == 0:
            # Not even a keep-alive arrived: something on the way holds the stream back.
            raise StreamUnavailableError(f"nothing arrived within {STREAM_READ_TIMEOUT:g} s") from error
        raise
