"""On a GPU machine: a worker offers its GPUs, each job runs pinned to the device indices it claimed
(the GPUs its processes hold memory on, by nvidia-smi), and jobs running at once never share a GPU."""

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpu.conftest import GPUS
from service_processes import start_worker, stop

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not GPUS, reason="no CUDA GPU")]


@pytest.fixture(scope="module")
def gpu_worker(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """A worker offering every GPU, one job per GPU at once."""
    from app.core.celery import job_queue

    log_path = tmp_path_factory.mktemp("gpu-worker") / "worker.log"
    env = {**os.environ, "DISTILLERY_HEARTBEAT_SECONDS": "1", "DISTILLERY_WORKER_ACCELERATOR": "cuda"}
    queues = f"{settings.queue_name},{job_queue(settings.queue_name, 'cuda')}"
    process = start_worker(env, queue_name=queues, log_path=log_path, concurrency=len(GPUS))
    yield process
    if stop(process) not in (0, -15):
        print(log_path.read_text()[-5000:])


def descendants(pid: int) -> list[int]:
    """The process and every process under it."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        children = Path(f"/proc/{parent}/task/{parent}/children")
        try:
            kids = [int(child) for child in children.read_text().split()]
        except OSError:
            continue
        found += kids
        frontier += kids
    return found


def nvidia_smi(query: str, fields: str) -> list[list[str]]:
    """Rows of `nvidia-smi --query-<query>=<fields>` as lists of stripped values."""
    output = subprocess.run(
        ["nvidia-smi", f"--query-{query}={fields}", "--format=csv,noheader"], capture_output=True, check=True
    ).stdout.decode()
    return [[value.strip() for value in line.split(",")] for line in output.splitlines() if line.strip()]


def gpus_of_job(db_session: Any, job_id: str) -> set[str]:
    """Indices of the GPUs on which a process of the job's process tree holds memory."""
    from sqlalchemy import select

    from app.jobs.models import Job

    db_session.expire_all()
    worker_id = db_session.scalar(select(Job.worker_id).where(Job.id == job_id))
    if worker_id is None:
        return set()
    pids = {str(pid) for pid in descendants(int(worker_id.rsplit(":", 1)[1]))}
    index_of_bus = {bus: index for index, bus in nvidia_smi("gpu", "index,pci.bus_id")}
    return {index_of_bus[bus] for pid, bus in nvidia_smi("compute-apps", "pid,gpu_bus_id") if pid in pids}


def claimed_devices(client: Any, job_id: str) -> list[int]:
    events = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
    [running] = [event for event in events if event["message"].startswith("running on")]
    devices: list[int] = running["data"]["devices"]
    return devices


def cuda_workers(client: Any) -> list[dict[str, Any]]:
    workers = client.get("/v1/workers").json()["data"]
    return [worker for worker in workers if worker["accelerator"] == "cuda"]


def test_the_worker_offers_every_gpu(gpu_worker: Any, client: Any) -> None:
    deadline = time.monotonic() + 60
    while not (workers := cuda_workers(client)) and time.monotonic() < deadline:
        time.sleep(0.5)
    [worker] = workers
    assert (worker["accelerator"], worker["devices"]) == ("cuda", len(GPUS))
    assert worker["device_memory_gb"] == min(gpu.memory_gb for gpu in GPUS)


def test_jobs_run_pinned_to_the_gpus_they_claimed(
    gpu_worker: Any,
    client: Any,
    db_session: Any,
    distill_spec: dict[str, Any],
    wait_for: Callable[..., dict[str, Any]],
) -> None:
    spec = {
        **distill_spec,
        "resources": {"accelerator": "cuda", "devices": 1},
        "training": {**distill_spec["training"], "epochs": 20},
    }
    jobs = [client.post("/v1/jobs", json=spec).json()["id"] for _ in range(min(2, len(GPUS)))]
    seen: dict[str, set[str]] = {job: set() for job in jobs}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        states = [client.get(f"/v1/jobs/{job}").json()["status"] for job in jobs]
        for job, state in zip(jobs, states, strict=True):
            if state == "running":
                seen[job] |= gpus_of_job(db_session, job)
        if all(state in {"succeeded", "failed", "cancelled"} for state in states):
            break
        time.sleep(0.2)
    claimed = {job: claimed_devices(client, job) for job in jobs}
    for job in jobs:
        assert wait_for(client, job)["status"] == "succeeded"
        assert seen[job] == {str(device) for device in claimed[job]}, (job, seen[job], claimed[job])
    if len(jobs) == 2:
        assert set(claimed[jobs[0]]).isdisjoint(claimed[jobs[1]])
