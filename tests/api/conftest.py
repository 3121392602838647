"""A real uvicorn process of the API, shared by the tests that need one: streams and logs."""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from local_ports import free_port
from service_processes import start_api, stop


@dataclass(frozen=True)
class LiveApi:
    """Where the API process listens and where its log goes."""

    url: str
    log_path: Path


@pytest.fixture(scope="session")
def live_api(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """`uvicorn app.main:app` on the test database, logging JSON, its streams quick to poll and keep alive."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("live-api") / "api.log"
    env = {
        **os.environ,
        "DISTILLERY_LOG_FORMAT": "json",
        "DISTILLERY_EVENT_STREAM_POLL_SECONDS": "0.2",
        "DISTILLERY_EVENT_STREAM_KEEP_ALIVE_SECONDS": "0.5",
    }
    process = start_api(env, port=port, log_path=log_path)
    yield LiveApi(url=f"http://127.0.0.1:{port}", log_path=log_path)
    stop(process)
