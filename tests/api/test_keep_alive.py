"""An unexpected failure is a 500 in the standard shape that keeps the connection open (real uvicorn)."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_ports import free_port

from api.failing_app import FAILING_PATH

TESTS_DIR = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 60


@pytest.fixture
def server_url(settings: Any, tmp_path: Path) -> Iterator[str]:
    """A uvicorn process serving the API and the failing route on a free port."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "api.failing_app:create", "--port", str(port)]
    with (tmp_path / "server.log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=TESTS_DIR.parent, env=_env_with_tests_on_path(), stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def _env_with_tests_on_path() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR.parent), str(TESTS_DIR)])}


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited on start"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not start")


def local_port(response: httpx.Response) -> int:
    """The client-side port of the connection a response came on."""
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


@pytest.mark.slow
def test_an_escaped_exception_is_a_500_and_the_next_request_reuses_the_connection(server_url: str) -> None:
    with httpx.Client(base_url=server_url, limits=httpx.Limits(max_connections=1)) as client:
        failed = client.get(FAILING_PATH)
        assert failed.status_code == 500
        assert failed.json() == {
            "error": {
                "code": "internal_error",
                "message": "an unexpected error occurred; it was logged",
                "param": None,
                "type": "system",
            }
        }
        assert failed.headers.get("connection") != "close"
        following = client.get("/healthz")
        assert following.status_code == 200
        assert local_port(following) == local_port(failed)
