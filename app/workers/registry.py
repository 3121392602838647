"""The worker's side of the registry: register at start, refresh with each heartbeat, leave at shutdown.

Like the job lifecycle seam, keyword arguments and plain data only, each call its own transaction.
"""

from dataclasses import asdict

from sqlalchemy import delete

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import session_scope
from app.workers import service
from app.workers.models import Worker
from app.workers.records import WorkerCapacity


def register(*, node: str, capacity: WorkerCapacity) -> None:
    """Record (or replace) the worker's row: a restarted node starts afresh."""
    now = utcnow()
    with session_scope() as session:
        session.execute(delete(Worker).where(Worker.id == node))
        session.add(Worker(id=node, started_at=now, heartbeat_at=now, **asdict(capacity)))


def refresh(*, node: str, capacity: WorkerCapacity) -> None:
    """Renew the worker's heartbeat with what it has now; registers it again if its row aged out."""
    with session_scope() as session:
        worker = session.get(Worker, node, with_for_update=True)
        if worker is None:
            session.add(Worker(id=node, started_at=utcnow(), heartbeat_at=utcnow(), **asdict(capacity)))
            return
        for name, value in asdict(capacity).items():
            setattr(worker, name, value)
        worker.heartbeat_at = utcnow()


def unregister(*, node: str) -> None:
    """Remove a worker that stops, so that nothing waits for it."""
    with session_scope() as session:
        session.execute(delete(Worker).where(Worker.id == node))


def forget_gone(*, settings: Settings) -> int:
    """Remove the workers whose heartbeat lapsed (killed rather than stopped); returns how many."""
    with session_scope() as session:
        return service.forget_gone(session=session, settings=settings, now=utcnow())
