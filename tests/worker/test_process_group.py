"""A job on two devices runs as one torchrun group of CPU processes, and no process of it outlives the job."""

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select

from app.jobs.models import Job

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("worker_process")]
TRAINING = {"batch_size": 16, "learning_rate": 1e-3, "warmup_ratio": 0.0}


def two_device_spec(distill_spec: dict[str, Any], **training: Any) -> dict[str, Any]:
    """The tiny KD job on two CPU processes (the global batch of 16 split in two)."""
    return {
        **distill_spec,
        "resources": {"accelerator": "cpu", "devices": 2},
        "training": {**distill_spec["training"], **TRAINING, **training},
    }


def job_process(db_session: Any, job_id: str) -> psutil.Process:
    """The job's own process, named by the worker id it claimed the job with."""
    worker_id = db_session.scalar(select(Job.worker_id).where(Job.id == job_id))
    return psutil.Process(int(worker_id.rsplit(":", 1)[1]))


def group_of(job: psutil.Process) -> tuple[psutil.Process, dict[int, psutil.Process]]:
    """The torchrun agent under a job process, and its ranks by rank."""
    (agent,) = [child for child in job.children() if "torch.distributed.run" in child.cmdline()]
    ranks = {int(rank.environ()["RANK"]): rank for rank in agent.children()}
    return agent, ranks


def wait_until_gone(processes: list[psutil.Process], timeout: float) -> None:
    """Wait for every process to end (a zombie counts as ended); fail naming those left."""
    deadline = time.monotonic() + timeout
    while alive := [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]:
        assert time.monotonic() < deadline, f"still running: {[p.cmdline() for p in alive]}"
        time.sleep(0.2)


def post_job(client: Any, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def events_of(client: Any, job_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 500}).json()["data"]
    return data


def test_cancelling_a_two_process_job_ends_every_process_of_its_group(
    client: Any, db_session: Any, distill_spec: dict[str, Any], wait_for: Callable[..., dict[str, Any]]
) -> None:
    job = post_job(client, two_device_spec(distill_spec, epochs=100))
    wait_for(client, job["id"], until=lambda j: j["status"] == "running" and j["progress"]["step"] > 0)
    process = job_process(db_session, job["id"])
    agent, ranks = group_of(process)
    assert sorted(ranks) == [0, 1]

    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200

    done = wait_for(client, job["id"], timeout=60)
    assert done["status"] == "cancelled"
    wait_until_gone([agent, *ranks.values()], timeout=30)
    assert process.is_running()  # the job process waits for the group, then returns
    wait_until_gone([process], timeout=30)


def test_a_rank_killed_mid_job_ends_the_group_and_the_next_attempt_resumes_from_the_checkpoint(
    client: Any,
    db_session: Any,
    settings: Any,
    distill_spec: dict[str, Any],
    wait_for: Callable[..., dict[str, Any]],
) -> None:
    spec = two_device_spec(distill_spec, epochs=6, eval_every_steps=4, checkpoint_every_steps=4)
    job = post_job(client, spec)
    checkpoints = Path(settings.artifacts) / "jobs" / job["id"] / "checkpoints"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("step-*")):
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.05)
    agent, ranks = group_of(job_process(db_session, job["id"]))

    ranks[1].send_signal(signal.SIGKILL)

    wait_until_gone([agent, *ranks.values()], timeout=30)
    done = wait_for(client, job["id"], timeout=300)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 2
    messages = [event["message"] for event in events_of(client, job["id"])]
    requeue = next(i for i, message in enumerate(messages) if "queued again for attempt 2" in message)
    assert "rank 1" in messages[requeue] and "SIGKILL" in messages[requeue], messages[requeue]
    resumed = [m for m in messages[requeue:] if m.startswith("resumed from the checkpoint at step")]
    assert resumed, messages[requeue:]


def test_killing_the_job_process_ends_the_agent_and_the_ranks(
    client: Any, db_session: Any, distill_spec: dict[str, Any], wait_for: Callable[..., dict[str, Any]]
) -> None:
    job = post_job(client, two_device_spec(distill_spec, epochs=100))
    wait_for(client, job["id"], until=lambda j: j["status"] == "running" and j["progress"]["step"] > 0)
    process = job_process(db_session, job["id"])
    agent, ranks = group_of(process)

    process.send_signal(signal.SIGKILL)

    wait_until_gone([process, agent, *ranks.values()], timeout=10)


def test_a_one_device_job_runs_in_the_job_process_alone(
    client: Any,
    db_session: Any,
    distill_spec: dict[str, Any],
    wait_for: Callable[..., dict[str, Any]],
    worker_process: subprocess.Popen[bytes],
) -> None:
    spec = {**distill_spec, "training": {**distill_spec["training"], "epochs": 100}}
    job = post_job(client, spec)
    wait_for(client, job["id"], until=lambda j: j["status"] == "running" and j["progress"]["step"] > 0)
    process = job_process(db_session, job["id"])

    assert process.children() == []
    assert "worker.job_process" in process.cmdline()
    client.post(f"/v1/jobs/{job['id']}/cancel")
    assert wait_for(client, job["id"], timeout=60)["status"] == "cancelled"
