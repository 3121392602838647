"""Test setup: a throwaway Postgres database, a Redis queue of its own, and clients of the real API.

The environment is set in `pytest_configure`, before any test module imports the app, because the
settings are read once per process. The database is created only when a test asks for it, so tests
that need no service (the engine's, the client's) run without Postgres.
"""

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from postgres_admin import admin_execute, database_url
from upload_samples import SAMPLE_ROWS, dataset_bytes

REDIS_URL = "redis://127.0.0.1:6379/15"
TABLES_CHILDREN_FIRST = [
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "artifacts",
    "checkpoints",
    "job_events",
    "jobs",
    "sweeps",
    "files",
    "api_keys",
]
_run = {"database": f"distillery_test_{secrets.token_hex(4)}", "data_dir": ""}


def pytest_configure(config: pytest.Config) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="distillery-tests-"))
    (data_dir / "models").mkdir()
    _run["data_dir"] = str(data_dir)
    os.environ.update(
        {
            "DISTILLERY_ENVIRONMENT": "development",
            "DISTILLERY_DATABASE_URL": database_url(_run["database"]),
            "DISTILLERY_BROKER_URL": REDIS_URL,
            "DISTILLERY_QUEUE_NAME": f"distillery.test.{secrets.token_hex(4)}",
            "DISTILLERY_WEBHOOK_QUEUE_NAME": f"distillery.test.webhooks.{secrets.token_hex(4)}",
            "DISTILLERY_DATA_DIR": str(data_dir),
            "DISTILLERY_MODEL_ROOTS": json.dumps([str(data_dir / "models")]),
        }
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if _run["data_dir"]:
        shutil.rmtree(_run["data_dir"], ignore_errors=True)


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """The session's Postgres database, migrated to head; dropped at the end."""
    from app.core.config import get_settings
    from app.core.db import get_engine
    from app.main import upgrade_database

    admin_execute(f'CREATE DATABASE "{_run["database"]}"')
    try:
        upgrade_database(get_settings())
        yield _run["database"]
    finally:
        get_engine().dispose()
        admin_execute(f'DROP DATABASE IF EXISTS "{_run["database"]}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings(database: str) -> Any:
    """The settings every test process shares (from the environment set above)."""
    from app.core.config import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def redis_client(settings: Any) -> Iterator[Any]:
    """A client of the test broker; the session's queue is removed at the end."""
    import redis

    from app.core.celery import job_queues

    client = redis.Redis.from_url(settings.broker_url)
    yield client
    for queue in (*job_queues(settings.queue_name), settings.webhook_queue_name):
        client.delete(queue, f"_kombu.binding.{queue}")
    client.close()


@pytest.fixture
def clean_state(settings: Any, redis_client: Any) -> None:
    """Each test starts with empty tables, an empty artifact store and an empty queue."""
    from sqlalchemy import text

    from app.core.db import get_engine

    with get_engine().begin() as connection:
        for table in TABLES_CHILDREN_FIRST:
            connection.execute(text(f"DELETE FROM {table}"))
    shutil.rmtree(settings.artifacts, ignore_errors=True)
    from app.core.celery import job_queues

    redis_client.delete(*job_queues(settings.queue_name), settings.webhook_queue_name)


@pytest.fixture
def no_workers(clean_state: None) -> None:
    """An empty workers registry (clean_state keeps it: a module's worker process registered itself)."""
    from sqlalchemy import text

    from app.core.db import get_engine

    with get_engine().begin() as connection:
        connection.execute(text("DELETE FROM workers"))


@pytest.fixture
def db_session(clean_state: None) -> Iterator[Any]:
    """A session on the test database, for arranging and inspecting rows; commit what the API must see."""
    from app.core.db import get_sessionmaker

    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture(scope="session")
def api_app(settings: Any) -> Iterator[Any]:
    """The API as deployed, built once for the session."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    app = create_app(settings)
    with TestClient(app):  # runs the lifespan once
        yield app


def bearer(key: str) -> dict[str, str]:
    """Headers that authenticate with an API key."""
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def make_client(api_app: Any, clean_state: None) -> Iterator[Callable[..., Any]]:
    """Build a client: `make_client(api_key=..., **settings_overrides)`; overrides build a fresh app."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    opened: list[Any] = []

    def build(api_key: str | None = None, **overrides: Any) -> Any:
        headers = bearer(api_key) if api_key else {}
        if not overrides:
            return TestClient(api_app, headers=headers)
        app = create_app(api_app.state.settings.model_copy(update=overrides))
        client = TestClient(app, headers=headers).__enter__()
        opened.append(client)
        return client

    yield build
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., Any], settings: Any) -> Any:
    """A client authenticated with the development key (tenant `default`)."""
    return make_client(api_key=settings.dev_api_key)


@pytest.fixture
def anonymous_client(make_client: Callable[..., Any]) -> Any:
    """A client that sends no API key."""
    return make_client()


@pytest.fixture
def other_tenant_client(make_client: Callable[..., Any], db_session: Any) -> Any:
    """A client of a second tenant, `other`, with a key made by `create_key`."""
    from app.auth.service import create_key

    key = create_key(session=db_session, tenant="other", name="tests")
    db_session.commit()
    return make_client(api_key=key)


@pytest.fixture
def model_root(settings: Any) -> Path:
    """The directory models may be read from."""
    root: Path = settings.model_roots[0]
    return root


@pytest.fixture
def tiny_model(model_root: Path) -> str:
    """A model directory (a config.json is all the API checks); returns its path relative to the root."""
    directory = model_root / "tiny-bert"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"model_type": "bert"}))
    return "tiny-bert"


@pytest.fixture
def upload_file() -> Callable[..., dict[str, Any]]:
    """Upload rows as a dataset: `upload_file(client, rows, fmt)`; returns the file object."""

    def upload(client: Any, rows: list[dict[str, Any]] | None = None, fmt: str = "jsonl") -> dict[str, Any]:
        content = dataset_bytes(rows or SAMPLE_ROWS, fmt)
        response = client.post("/v1/files", files={"file": (f"data.{fmt}", content)})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return upload


@pytest.fixture
def job_spec(client: Any, upload_file: Callable[..., dict[str, Any]], tiny_model: str) -> dict[str, Any]:
    """A valid job request of the default tenant: response KD from the tiny model on an uploaded file."""
    file = upload_file(client)
    return {
        "teacher": {"path": tiny_model},
        "data": {"train_file": file["id"]},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "training": {"epochs": 1, "batch_size": 2},
    }


@pytest.fixture
def create_job(client: Any, job_spec: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """Post the valid job request (with optional top-level overrides); returns the job object."""

    def create(**overrides: Any) -> dict[str, Any]:
        response = client.post("/v1/jobs", json={**job_spec, **overrides})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return create


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """A real S3 API server (moto's) for this test process."""
    from object_store import moto_s3

    with moto_s3() as server:
        yield server
