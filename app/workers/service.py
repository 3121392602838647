"""Reads of the registry: the live workers, for the API and the scheduler; the claim's lock on a worker."""

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.api.errors import InvalidField
from app.core.config import Settings
from app.workers.models import Worker
from app.workers.records import LiveWorker


def public_id(node: str) -> str:
    """A worker's id as tenants see it: its node name carries its host's, which they are not told."""
    return f"wkr_{hashlib.sha256(node.encode()).hexdigest()[:24]}"


def lease_start(settings: Settings, now: datetime) -> datetime:
    """A worker whose last heartbeat is older than this is gone."""
    return now - timedelta(seconds=settings.lease_seconds)


def live_rows(*, session: Session, settings: Settings, now: datetime) -> list[Worker]:
    """Every live worker's row."""
    statement = select(Worker).where(Worker.heartbeat_at >= lease_start(settings, now))
    return list(session.scalars(statement))


def live_workers(*, session: Session, settings: Settings, now: datetime) -> list[LiveWorker]:
    """What the scheduler reads of every live worker."""
    return [live_worker(row) for row in live_rows(session=session, settings=settings, now=now)]


def live_worker(row: Worker) -> LiveWorker:
    """The scheduler's view of a worker's row."""
    memory = row.device_memory_gb if row.accelerator == "cuda" else row.host_memory_gb
    return LiveWorker(id=row.id, accelerator=row.accelerator, devices=row.devices, memory_gb=memory)


def lock_for_claim(*, session: Session, node: str, now: datetime) -> LiveWorker | None:
    """Lock the worker's row for a claim (on SQLite, the write takes the database's write lock first);
    None when the worker is not registered."""
    row = session.scalar(
        update(Worker)
        .where(Worker.id == node)
        .values(heartbeat_at=now)
        .returning(Worker)
        .execution_options(synchronize_session=False)
    )
    return None if row is None else live_worker(row)


def accelerator_of(*, session: Session, node: str) -> str | None:
    """The accelerator of a registered worker."""
    return session.scalar(select(Worker.accelerator).where(Worker.id == node))


def forget_gone(*, session: Session, settings: Settings, now: datetime) -> int:
    """Delete the rows of workers whose heartbeat lapsed (killed, not stopped); returns how many."""
    gone = session.execute(delete(Worker).where(Worker.heartbeat_at < lease_start(settings, now)))
    return int(gone.rowcount)  # type: ignore[attr-defined]


def page_of_live(
    *, session: Session, settings: Settings, now: datetime, limit: int, after: str | None
) -> tuple[list[Worker], bool]:
    """A page of live workers ordered by public id, after the worker `after` names."""
    rows = sorted(live_rows(session=session, settings=settings, now=now), key=lambda row: public_id(row.id))
    if after is not None:
        ids = [public_id(row.id) for row in rows]
        if after not in ids:
            raise InvalidField(
                "after",
                f"unknown cursor '{after}': pass the `last_id` of a previous page",
                code="invalid_cursor",
            )
        rows = rows[ids.index(after) + 1 :]
    return rows[:limit], len(rows) > limit
