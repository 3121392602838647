"""Arranging rows and files as a worker would leave them."""

import hashlib
from typing import Any

from app.jobs.models import Artifact


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
