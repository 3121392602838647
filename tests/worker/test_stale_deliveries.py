"""A delivery for a job that is not queued is counted and acked at once; real jobs run in fresh processes."""

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.jobs.models import Job, JobStatus
from app.jobs.queue import publish_job

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("worker_process")]


def pool_processes(worker: subprocess.Popen[bytes]) -> list[int]:
    """The worker's pool processes: its children (read from /proc: Linux only)."""
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def unacked_messages_of(redis_client: Any, job_ids: list[str]) -> list[str]:
    """Messages of these jobs that a worker took and has not acked (kombu's `unacked` hash)."""
    entries = [json.loads(raw)[0]["headers"] for raw in redis_client.hvals("unacked")]
    return [headers["id"] for headers in entries if headers.get("argsrepr", "").strip("[]'") in job_ids]


def wait_until(condition: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def deliveries(db_session: Any, job_id: str) -> int:
    db_session.expire_all()
    count: int = db_session.scalar(select(Job.deliveries).where(Job.id == job_id))
    return count


def test_stale_deliveries_are_counted_and_acked_without_recycling_the_pool_process(
    client: Any,
    db_session: Any,
    distill_spec: dict[str, Any],
    redis_client: Any,
    settings: Any,
    worker_process: subprocess.Popen[bytes],
    wait_for: Callable[..., dict[str, Any]],
) -> None:
    finished = Job(tenant="default", spec=distill_spec, status=JobStatus.SUCCEEDED)
    cancelled = Job(tenant="default", spec=distill_spec, status=JobStatus.CANCELLED)
    db_session.add_all([finished, cancelled])
    db_session.commit()
    deadline = time.monotonic() + 60
    while not pool_processes(worker_process):  # the pool starts after the worker connects
        assert time.monotonic() < deadline, "the worker started no pool process"
        time.sleep(0.2)
    pool_before = pool_processes(worker_process)

    started = time.monotonic()
    for job_id in [finished.id, cancelled.id, finished.id]:
        publish_job(job_id)
    while deliveries(db_session, finished.id) < 2 or deliveries(db_session, cancelled.id) < 1:
        assert time.monotonic() - started < 20, "the stale deliveries were not all taken"
        time.sleep(0.1)
    stale_seconds = time.monotonic() - started

    assert stale_seconds < 5  # three process restarts would take longer than this
    assert redis_client.llen(settings.queue_name) == 0
    assert wait_until(lambda: not unacked_messages_of(redis_client, [finished.id, cancelled.id]))
    assert pool_processes(worker_process) == pool_before

    job = client.post("/v1/jobs", json=distill_spec).json()
    done = wait_for(client, job["id"])

    assert done["status"] == "succeeded", done["error"]
    assert deliveries(db_session, job["id"]) == 1
    job_pid = int(db_session.scalar(select(Job.worker_id).where(Job.id == job["id"])).rsplit(":", 1)[1])
    assert job_pid not in pool_before + [worker_process.pid]  # the job ran in a process of its own
    assert pool_processes(worker_process) == pool_before
    assert deliveries(db_session, finished.id) == 2 and deliveries(db_session, cancelled.id) == 1
