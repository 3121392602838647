"""A transport that hands the client's requests to the API in this process, through a TestClient."""

from typing import Any

import httpx

from distillery.client import DistilleryClient


class InProcess(httpx.BaseTransport):
    """Each request goes to the test API's app: no socket, the same app and database."""

    def __init__(self, test_client: Any) -> None:
        self.test_client = test_client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.test_client.request(
            request.method, request.url.raw_path.decode(), headers=request.headers, content=request.read()
        )
        # The body comes decoded, so the headers that describe its encoding on the wire are left out.
        headers = {k: v for k, v in answer.headers.items() if k not in ("content-encoding", "content-length")}
        return httpx.Response(answer.status_code, headers=headers, content=answer.content)


def in_process_client(test_client: Any, api_key: str) -> DistilleryClient:
    """The Python client of the test API, authenticated with `api_key`."""
    return DistilleryClient(str(test_client.base_url), api_key=api_key, transport=InProcess(test_client))
