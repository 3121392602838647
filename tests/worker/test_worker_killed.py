"""A worker killed mid-job takes the job's own process with it, and the job is queued and sent again."""

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.jobs.models import Job
from worker.reconciler import reconcile_once

pytestmark = pytest.mark.slow


def process_exists(pid: int) -> bool:
    """Whether `pid` is still running: a zombie (ended, not yet reaped by whoever adopted it) is not."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_killing_the_worker_ends_the_job_process_and_the_job_is_requeued(
    client: Any,
    db_session: Any,
    distill_spec: dict[str, Any],
    redis_client: Any,
    settings: Any,
    worker_process: subprocess.Popen[bytes],
    wait_for: Callable[..., dict[str, Any]],
) -> None:
    long_spec = {**distill_spec, "training": {**distill_spec["training"], "epochs": 100}}
    job = client.post("/v1/jobs", json=long_spec).json()
    wait_for(client, job["id"], until=lambda j: j["status"] == "running" and j["progress"]["step"] > 0)
    worker_id = db_session.scalar(select(Job.worker_id).where(Job.id == job["id"]))
    job_pid = int(worker_id.rsplit(":", 1)[1])
    assert job_pid != worker_process.pid and process_exists(job_pid)

    worker_process.send_signal(signal.SIGKILL)
    worker_process.wait()
    deadline = time.monotonic() + 30  # generous for a loaded machine; it is usually well under a second
    while process_exists(job_pid):
        assert time.monotonic() < deadline, "the job's process outlived its worker"
        time.sleep(0.1)

    # The reconciler's passes, as they run in a deployment: the job is sent again once its lease has
    # lapsed, whatever of the dead worker's process tree takes a moment longer to go on a loaded machine.
    short_lease = settings.model_copy(update={"lease_seconds": 1.0})
    deadline = time.monotonic() + 30
    sent: list[str] = []
    while not sent and time.monotonic() < deadline:
        time.sleep(1.1)
        sent = reconcile_once(short_lease)
    assert sent == [job["id"]]
    requeued = client.get(f"/v1/jobs/{job['id']}").json()
    assert requeued["status"] == "queued" and requeued["attempts"] == 1
    waiting = [
        json.loads(raw)["headers"]["argsrepr"] for raw in redis_client.lrange(settings.queue_name, 0, -1)
    ]
    assert waiting == [repr([job["id"]])]
