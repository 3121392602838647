"""With DISTILLERY_EXECUTOR=ray, the worker hands each job to a Ray cluster (here a local head with two
CPUs): Ray Train runs its two gloo ranks, and the job ends, cancels and retries as on the local executor.
"""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray.job_submission import JobStatus as RayStatus
from ray.job_submission import JobSubmissionClient
from service_processes import stop

from bench.service.ray_head import RayHead
from ray_jobs.conftest import start_job_worker, wait_for, wait_until

pytestmark = pytest.mark.slow
# Two ways of summing the same gradients (see tests/engine/test_distributed.py): a few ulps per step.
RELATIVE = 1e-4


@pytest.fixture
def local_worker(settings: Any, tmp_path: Path) -> Iterator[Any]:
    """A job worker on the local executor, on the tests' default queue."""
    env = {**os.environ, "DISTILLERY_HEARTBEAT_SECONDS": "1", "DISTILLERY_RECONCILE_SECONDS": "3600"}
    process = start_job_worker(
        env, queue_name=settings.queue_name, hostname="local@%h", log_path=tmp_path / "local-worker.log"
    )
    yield process
    stop(process)


def post_job(client: Any, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def messages_of(client: Any, job_id: str) -> list[str]:
    events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 500}).json()["data"]
    return [event["message"] for event in events]


def ray_jobs_of(head: RayHead, job_id: str, timeout: float = 30) -> dict[str, RayStatus]:
    """The Ray jobs submitted for a Distillery job, by submission id, with their status once all ended
    (rank 0 records the job's end before its Ray job exits)."""
    client = JobSubmissionClient(head.address)
    deadline = time.monotonic() + timeout
    while True:
        jobs = {job.submission_id: job.status for job in client.list_jobs() if job.submission_id}
        found = {sid: status for sid, status in jobs.items() if sid.startswith(job_id)}
        if all(status.is_terminal() for status in found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_a_two_worker_job_on_ray_trains_as_the_local_executor_does(
    request: pytest.FixtureRequest, client: Any, distill_spec: dict[str, Any], local_worker: Any
) -> None:
    # The local run first, and its worker stopped before the ray-executor worker starts: both would
    # serve the same jobs.
    local = wait_for(client, post_job(client, distill_spec)["id"])
    assert local["status"] == "succeeded", local["error"]
    assert "running on local@" in messages_of(client, local["id"])[1]
    stop(local_worker)
    ray_head: RayHead = request.getfixturevalue("ray_head")
    ray_client = request.getfixturevalue("ray_client")

    on_ray = wait_for(ray_client, post_job(ray_client, distill_spec)["id"])

    assert on_ray["status"] == "succeeded", on_ray["error"]
    assert ray_jobs_of(ray_head, on_ray["id"]) == {f"{on_ray['id']}-attempt-1": RayStatus.SUCCEEDED}
    ray_training, local_training = on_ray["result"]["training"], local["result"]["training"]
    for key in ("devices", "parallelism", "steps", "best_step", "train_examples"):
        assert ray_training[key] == local_training[key], key
    ray_eval, local_eval = on_ray["result"]["student"]["eval"], local["result"]["student"]["eval"]
    assert ray_eval.keys() == local_eval.keys()
    for name, value in local_eval.items():
        assert ray_eval[name] == pytest.approx(value, rel=RELATIVE, nan_ok=True), name


def test_cancelling_a_job_stops_its_ray_job_and_every_process_of_it(
    ray_head: RayHead, ray_client: Any, distill_spec: dict[str, Any]
) -> None:
    spec = {**distill_spec, "training": {**distill_spec["training"], "epochs": 100}}
    job = post_job(ray_client, spec)
    wait_for(ray_client, job["id"], until=lambda j: j["status"] == "running" and j["progress"]["step"] > 0)
    assert len(ray_head.running("ray::RayTrainWorker")) == 2

    assert ray_client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200

    assert wait_for(ray_client, job["id"], timeout=60)["status"] == "cancelled"
    assert ray_jobs_of(ray_head, job["id"]) == {f"{job['id']}-attempt-1": RayStatus.STOPPED}
    wait_until(
        lambda: not ray_head.running("ray::RayTrainWorker"),
        timeout=30,
        what="a Ray Train worker outlived the job",
    )
    wait_until(
        lambda: not ray_head.running("worker.ray_entry"), timeout=30, what="the entrypoint outlived the job"
    )


def test_a_killed_ray_worker_requeues_the_job_which_resumes_from_its_checkpoint(
    ray_head: RayHead, ray_client: Any, settings: Any, distill_spec: dict[str, Any]
) -> None:
    training = {"epochs": 3, "eval_every_steps": 4, "checkpoint_every_steps": 4}
    job = post_job(ray_client, {**distill_spec, "training": {**distill_spec["training"], **training}})
    checkpoints = Path(settings.artifacts) / "jobs" / job["id"] / "checkpoints"
    wait_until(lambda: any(checkpoints.glob("step-*")), timeout=120, what="no checkpoint written")
    victim = max(ray_head.running("ray::RayTrainWorker"), key=lambda process: process.pid)

    victim.send_signal(signal.SIGKILL)

    done = wait_for(ray_client, job["id"], timeout=180)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 2
    assert ray_jobs_of(ray_head, job["id"]) == {
        f"{job['id']}-attempt-1": RayStatus.FAILED,
        f"{job['id']}-attempt-2": RayStatus.SUCCEEDED,
    }
    messages = messages_of(ray_client, job["id"])
    requeue = next(i for i, message in enumerate(messages) if "queued again for attempt 2" in message)
    # The failure Ray saw first: the killed rank's death, or its peer's collective failing on it.
    assert f"Ray job {job['id']}-attempt-1 failed: rank " in messages[requeue], messages[requeue]
    assert any(m.startswith("resumed from the checkpoint at step") for m in messages[requeue:])
