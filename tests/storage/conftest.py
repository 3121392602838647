"""Stores for the storage tests: a local folder or a fresh bucket on moto, and the API as a process on S3."""

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from local_ports import free_port
from object_store import CREDENTIALS, MotoS3
from service_processes import start_api, stop


@pytest.fixture
def s3_environment(s3_server: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Point this process's AWS variables at an endpoint (moto's by default) for the stores it opens."""

    def point_at(endpoint: str = s3_server.endpoint) -> None:
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)

    point_at()
    return point_at


@pytest.fixture
def s3_url(s3_server: MotoS3, s3_environment: Callable[[str], None]) -> str:
    """An `s3://bucket/prefix` URL on a bucket of this test's own."""
    return f"s3://{s3_server.new_bucket()}/distillery"


@pytest.fixture
def fault_proxy(s3_server: MotoS3) -> Iterator[FaultProxy]:
    """A proxy in front of the moto server that answers 503 on demand."""
    proxy = FaultProxy(s3_server.endpoint)
    yield proxy
    proxy.close()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Each store backend in turn, empty."""
    from app.core.storage import LocalStore
    from app.core.storage.s3 import S3Store

    if request.param == "local":
        return LocalStore(tmp_path / "store")
    url = request.getfixturevalue("s3_url")
    return S3Store(url, retry_attempts=3)


@dataclass(frozen=True)
class LiveS3Api:
    """A uvicorn process of the API on an S3 store: its address, pid, store URL and log."""

    url: str
    pid: int
    storage_url: str
    log_path: Path


@pytest.fixture(scope="session")
def store_downloads_proxy(s3_server: MotoS3) -> Iterator[FaultProxy]:
    """The store's public address for presigned URLs: a proxy to moto that records what clients send."""
    proxy = FaultProxy(s3_server.endpoint)
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def live_s3_api(
    settings: Any,
    s3_server: MotoS3,
    store_downloads_proxy: FaultProxy,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[bool], LiveS3Api]]:
    """`live_s3_api(presigned)`: the API as a process on a bucket of its own; one per mode and session."""
    started: dict[bool, tuple[LiveS3Api, Any]] = {}

    def api(presigned: bool) -> LiveS3Api:
        if presigned not in started:
            url = f"s3://{s3_server.new_bucket()}/distillery"
            env = {**os.environ, **s3_server.environment(url), "DISTILLERY_LOG_FORMAT": "json"}
            if presigned:
                env["DISTILLERY_STORAGE_PRESIGNED_DOWNLOADS"] = "true"
                env["DISTILLERY_STORAGE_PUBLIC_ENDPOINT_URL"] = store_downloads_proxy.endpoint
            port, log_path = free_port(), tmp_path_factory.mktemp("s3-api") / "api.log"
            process = start_api(env, port=port, log_path=log_path)
            live = LiveS3Api(f"http://127.0.0.1:{port}", process.pid, url, log_path)
            started[presigned] = (live, process)
        return started[presigned][0]

    yield api
    for _, process in started.values():
        stop(process)
