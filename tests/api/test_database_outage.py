"""A database outage answers 503 with Retry-After, fast and with one warning, and the API recovers alone."""

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_ports import free_port
from service_processes import start_api, stop
from throwaway_postgres import ThrowawayPostgres, throwaway_postgres
from upload_samples import SAMPLE_ROWS, dataset_bytes

pytestmark = pytest.mark.slow
TIMEOUT_SECONDS = 2.0


def api_settings(database_url: str, data_dir: Path) -> Any:
    from app.core.config import Settings

    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        model_roots=[data_dir / "models"],
        database_timeout_seconds=TIMEOUT_SECONDS,
    )


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayPostgres]:
    with throwaway_postgres() as started:
        yield started


@pytest.fixture(scope="module")
def outage_client(server: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A client of an API whose database is the throwaway server."""
    from fastapi.testclient import TestClient

    from app.main import create_app, upgrade_database

    settings = api_settings(server.create_database("distillery"), tmp_path_factory.mktemp("outage-api"))
    upgrade_database(settings)
    headers = {"Authorization": f"Bearer {settings.dev_api_key}"}
    with TestClient(create_app(settings), headers=headers) as client:
        yield client


def requests_of_every_kind(client: Any) -> dict[str, Any]:
    """One request per kind of route: lists, reads, an upload and a job creation."""
    spec = {"teacher": {"path": "tiny"}, "data": {"train_file": "file_x"}, "method": {"type": "supervised"}}
    upload = {"file": ("data.jsonl", dataset_bytes(SAMPLE_ROWS, "jsonl"))}
    return {
        "GET /v1/jobs": lambda: client.get("/v1/jobs"),
        "GET /v1/jobs/{id}": lambda: client.get("/v1/jobs/job_missing"),
        "GET /v1/jobs/{id}/events": lambda: client.get("/v1/jobs/job_missing/events"),
        "GET /v1/files": lambda: client.get("/v1/files"),
        "POST /v1/files": lambda: client.post("/v1/files", files=upload),
        "POST /v1/jobs": lambda: client.post("/v1/jobs", json=spec),
        "POST /v1/jobs/{id}/cancel": lambda: client.post("/v1/jobs/job_missing/cancel"),
    }


def test_a_stopped_database_answers_503_with_retry_after_and_a_restart_answers_200(
    server: ThrowawayPostgres, outage_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert outage_client.get("/v1/jobs").status_code == 200
    caplog.set_level(logging.INFO, logger="app")

    server.stop()
    try:
        answers = {}
        for name, send in requests_of_every_kind(outage_client).items():
            started = time.monotonic()
            answers[name] = (send(), time.monotonic() - started)
    finally:
        server.start()

    for name, (response, seconds) in answers.items():
        assert response.status_code == 503, (name, response.text)
        assert response.headers["Retry-After"].isdigit(), name
        error = response.json()["error"]
        assert (error["code"], error["type"]) == ("database_unavailable", "system"), name
        assert seconds < TIMEOUT_SECONDS + 1, name
    assert outage_client.get("/v1/jobs").status_code == 200
    assert outage_client.get("/v1/files").status_code == 200
    app_records = [record for record in caplog.records if record.name.startswith("app")]
    warnings = [record for record in app_records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, [record.getMessage() for record in warnings]
    assert warnings[0].exc_info is None
    assert any("answers again" in record.getMessage() for record in app_records)


def test_a_database_that_accepts_connections_but_never_answers_fails_requests_within_the_timeout(
    tmp_path: Path,
) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshake; nothing ever answers
        url = f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/distillery"
        settings = api_settings(url, tmp_path)
        headers = {"Authorization": f"Bearer {settings.dev_api_key}"}
        with TestClient(create_app(settings), headers=headers) as client:
            started = time.monotonic()
            response = client.get("/v1/jobs")
            seconds = time.monotonic() - started

    assert response.status_code == 503, response.text
    assert "Retry-After" in response.headers
    assert seconds < TIMEOUT_SECONDS + 2


def test_every_v1_route_declares_503_in_openapi(anonymous_client: Any) -> None:
    openapi = anonymous_client.get("/openapi.json").json()
    routes = [
        (path, method, operation)
        for path, item in openapi["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
    ]
    assert routes
    for path, method, operation in routes:
        assert "503" in operation["responses"], f"{method.upper()} {path}"


def test_the_python_client_rides_out_a_short_outage_on_repeatable_requests(
    server: ThrowawayPostgres, outage_client: Any, tmp_path: Path
) -> None:
    from distillery.client import ApiError, DistilleryClient

    port = free_port()
    env = {
        **os.environ,
        "DISTILLERY_DATABASE_URL": server.url("distillery"),  # migrated by `outage_client`
        "DISTILLERY_DATABASE_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
    }
    api = start_api(env, port=port, log_path=tmp_path / "api.log")
    dataset = tmp_path / "rows.jsonl"
    dataset.write_bytes(dataset_bytes(SAMPLE_ROWS, "jsonl"))
    try:
        with DistilleryClient(f"http://127.0.0.1:{port}", api_key="dk-dev-embedded-only") as client:
            server.stop()
            restart = threading.Timer(3.0, server.start)
            restart.start()
            try:
                started = time.monotonic()
                jobs = client.list_jobs()
                waited = time.monotonic() - started
            finally:
                restart.join()
            server.stop()
            try:
                with pytest.raises(ApiError) as refused:
                    client.upload_file(dataset)  # an upload's stream cannot be replayed: no retry
            finally:
                server.start()
    finally:
        stop(api)

    assert jobs["object"] == "list"
    assert waited >= 2.5  # it waited for the database rather than failing
    assert refused.value.status == 503
