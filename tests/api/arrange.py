"""Arranging rows and files as a worker would leave them."""

import hashlib
from typing import Any

from sqlalchemy import update

from app.core.base import utcnow
from app.jobs.events import append_event
from app.jobs.models import Artifact, Job


def stored_artifact(settings: Any, db_session: Any, job_id: str, name: str, content: bytes) -> None:
    """An artifact as a worker leaves it: the file in the store and its row (uncommitted)."""
    location = f"jobs/{job_id}/{name}"
    path = settings.artifacts / location
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    db_session.add(
        Artifact(
            job_id=job_id,
            name=name,
            media_type="application/gzip",
            bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            location=location,
        )
    )


def add_events(db_session: Any, job_id: str, count: int) -> None:
    """Append `count` message events to a job and commit them, as a worker's reporter does."""
    for _ in range(count):
        append_event(db_session, job_id=job_id, message="step done")
    db_session.commit()


def finish_job(db_session: Any, job_id: str, status: str = "succeeded") -> None:
    """End a job as a worker does: the status change and its event committed together."""
    db_session.execute(update(Job).where(Job.id == job_id).values(status=status, finished_at=utcnow()))
    append_event(db_session, job_id=job_id, type="status", message=f"job {status}", data={"status": status})
    db_session.commit()
