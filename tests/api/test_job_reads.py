"""`GET /v1/jobs/{id}` reads a row of the shown columns: the same answer as the job's ORM object gives."""

from functools import partial
from typing import Any

import anyio
import pytest

from app.api.errors import NotFound
from app.auth.service import KeyGrant
from app.core.async_reads import Reader
from app.core.db import get_engine
from app.jobs import service
from app.jobs.reads import read_job
from app.jobs.schemas import JobPublic


@pytest.fixture
def finished_pair(client: Any, job_spec: dict[str, Any], db_session: Any) -> dict[str, Any]:
    """A failed job with a name, metadata, a result, an error and a control run."""
    created = client.post(
        "/v1/jobs", json={**job_spec, "name": "kd", "metadata": {"run": "7"}, "control": True}
    ).json()
    job = service.get_job(session=db_session, tenant="default", job_id=created["id"])
    job.status, job.step, job.total_steps, job.epoch = "failed", 3, 10, 0.3
    job.result = {"metrics": {"eval_accuracy": 0.5}}
    job.error = {"code": "oom", "message": "out of memory", "type": "system", "retryable": True}
    db_session.commit()
    return created


def orm_view(db_session: Any, job_id: str) -> dict[str, Any]:
    db_session.expire_all()
    job = service.get_job(session=db_session, tenant="default", job_id=job_id)
    return JobPublic.from_row(job).model_dump(mode="json")


def test_the_answer_is_the_orm_objects_public_view(
    client: Any, finished_pair: dict[str, Any], db_session: Any
) -> None:
    for job_id in (finished_pair["id"], finished_pair["control_job_id"]):
        answer = client.get(f"/v1/jobs/{job_id}")
        assert answer.status_code == 200
        assert answer.json() == orm_view(db_session, job_id)
    assert client.get(f"/v1/jobs/{finished_pair['id']}").json()["error"]["code"] == "oom"


def test_the_thread_fallback_reads_the_same(finished_pair: dict[str, Any], db_session: Any) -> None:
    reader = Reader(None, get_engine())  # as on SQLite, which has no async driver here
    job_id = finished_pair["id"]
    read = anyio.run(reader.run, partial(read_job, grant=KeyGrant("default"), job_id=job_id))
    assert read.model_dump(mode="json") == orm_view(db_session, job_id)
    with pytest.raises(NotFound):
        anyio.run(reader.run, partial(read_job, grant=KeyGrant("other"), job_id=job_id))


def test_another_tenants_job_is_a_404(other_tenant_client: Any, finished_pair: dict[str, Any]) -> None:
    answer = other_tenant_client.get(f"/v1/jobs/{finished_pair['id']}")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"
