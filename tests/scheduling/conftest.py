"""The claim on both databases: the test Postgres, or a migrated SQLite file as the embedded default has."""

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(params=["postgres", "sqlite"])
def database_kind(
    request: pytest.FixtureRequest, settings: Any, no_workers: None, tmp_path: Path, monkeypatch: Any
) -> Iterator[str]:
    """Every lifecycle call of the test runs on this database."""
    if request.param == "postgres":
        yield "postgres"
        return
    from app.core import db
    from app.main import upgrade_database

    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    upgrade_database(settings.model_copy(update={"database_url": url}))
    engine = db.make_engine(url)
    sessions = db.make_sessionmaker(engine)
    monkeypatch.setattr(db, "get_sessionmaker", lambda: sessions)
    yield "sqlite"
    engine.dispose()


@pytest.fixture
def queue_job(database_kind: str) -> Callable[..., str]:
    """Store a queued job as the API does (its scheduling columns from its spec); returns its id."""
    from app.core.base import utcnow
    from app.core.db import session_scope
    from app.jobs.models import Job
    from app.jobs.scheduling import PRIORITY_RANKS

    clock = {"now": utcnow() - timedelta(minutes=1)}  # well within an ageing period

    def queue(
        tenant: str,
        *,
        priority: str = "normal",
        accelerator: str = "auto",
        devices: int = 1,
        min_memory_gb: float | None = None,
        queued_at: datetime | None = None,
    ) -> str:
        clock["now"] += timedelta(milliseconds=10)  # distinct, increasing queue times
        resources = {"accelerator": accelerator, "devices": devices, "min_memory_gb": min_memory_gb}
        job = Job(
            tenant=tenant,
            spec={"priority": priority, "resources": resources},
            priority_rank=PRIORITY_RANKS[priority],
            accelerator=accelerator,
            devices=devices,
            min_memory_gb=min_memory_gb,
            queued_at=queued_at or clock["now"],
            created_at=queued_at or clock["now"],
        )
        with session_scope() as session:
            session.add(job)
            session.flush()
            return job.id

    return queue
