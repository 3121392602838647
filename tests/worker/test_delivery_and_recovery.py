"""The database, not the queue, decides: duplicates do nothing, lost and orphaned jobs are recovered."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app.core.base import utcnow
from app.jobs.models import Job, JobStatus
from app.jobs.queue import publish_job
from worker.reconciler import reconcile_once

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("worker_process")]


def insert_job(db_session: Any, spec: dict[str, Any], **columns: Any) -> str:
    """A job row written straight to the database, as if its publish had been lost."""
    job = Job(tenant="default", spec=spec, **columns)
    db_session.add(job)
    db_session.commit()
    return job.id


def running_events(client: Any, job_id: str) -> list[dict[str, Any]]:
    events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
    return [event for event in events if event["message"].startswith("running on")]


def test_a_duplicate_delivery_of_a_job_runs_it_once(
    client: Any, distill_spec: dict[str, Any], wait_for: Callable[..., dict[str, Any]]
) -> None:
    job = client.post("/v1/jobs", json=distill_spec).json()
    publish_job(job["id"])
    publish_job(job["id"])

    done = wait_for(client, job["id"])

    assert done["status"] == "succeeded"
    assert done["attempts"] == 1
    assert len(running_events(client, job["id"])) == 1


def test_a_queued_job_whose_publish_was_lost_is_republished_and_runs(
    client: Any,
    db_session: Any,
    distill_spec: dict[str, Any],
    settings: Any,
    wait_for: Callable[..., dict[str, Any]],
) -> None:
    stale = utcnow() - timedelta(seconds=settings.requeue_after_seconds + 1)
    job_id = insert_job(db_session, distill_spec, queued_at=stale)

    assert job_id in reconcile_once(settings)

    assert wait_for(client, job_id)["status"] == "succeeded"


def test_a_job_whose_worker_died_is_retried_on_another(
    client: Any,
    db_session: Any,
    distill_spec: dict[str, Any],
    settings: Any,
    wait_for: Callable[..., dict[str, Any]],
) -> None:
    silent = utcnow() - timedelta(seconds=settings.lease_seconds + 1)
    job_id = insert_job(
        db_session,
        distill_spec,
        status=JobStatus.RUNNING,
        worker_id="gone:1",
        heartbeat_at=silent,
        attempts=1,
    )

    assert job_id in reconcile_once(settings)

    done = wait_for(client, job_id)
    assert done["status"] == "succeeded"
    assert done["attempts"] == 2
