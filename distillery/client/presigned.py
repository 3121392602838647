"""Downloads the API redirects to the object store: fetched from a short-lived presigned URL."""

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx

from distillery.client.errors import ApiError, StoreUnreachableError


@contextmanager
def stream_presigned(url: str, *, timeout: float | None) -> Iterator[httpx.Response]:
    """Stream a presigned URL with a plain client: the URL is its own credential, and the API key (or any
    header meant for the API) never reaches the store, whatever its origin."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True) as plain,
            plain.stream("GET", url) as response,
        ):
            if response.is_error:
                response.read()
                raise ApiError.from_response(response)
            yield response
    except (httpx.ConnectError, httpx.TimeoutException) as exc:
        raise StoreUnreachableError(origin, str(exc)) from exc
