"""Jobs as a worker leaves them, with their artifact in an S3 store."""

import hashlib
from typing import Any

from api.arrange import finish_job
from upload_samples import SAMPLE_ROWS, dataset_bytes


def job_with_artifact(client: Any, db_session: Any, store: Any, tiny_model: str, content: bytes) -> str:
    """A succeeded job whose artifact `student.tar.gz` is in the store, as a worker leaves it."""
    from app.jobs.models import Artifact

    file = client.post("/v1/files", files={"file": ("data.jsonl", dataset_bytes(SAMPLE_ROWS, "jsonl"))})
    spec = {"teacher": {"path": tiny_model}, "data": {"train_file": file.json()["id"]}}
    job = client.post("/v1/jobs", json={**spec, "method": {"type": "supervised"}})
    assert job.status_code == 201, job.text
    job_id: str = job.json()["id"]
    location = f"jobs/{job_id}/student.tar.gz"
    store.put_if_absent(location, content)
    sha256 = hashlib.sha256(content).hexdigest()
    db_session.add(
        Artifact(
            job_id=job_id,
            name="student.tar.gz",
            media_type="application/gzip",
            bytes=len(content),
            sha256=sha256,
            location=location,
        )
    )
    finish_job(db_session, job_id)
    return job_id
