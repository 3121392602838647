"""Routing with a real worker: a CPU worker consumes the `auto` and `cpu` queues, runs what it can serve,
and a `cuda` job waits for resources, visibly; the worker shows itself in GET /v1/workers."""

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from service_processes import start_worker, stop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cpu_worker(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """A worker forced to the CPU with one slot, reconciling every second; the only one registered."""
    from sqlalchemy import text

    from app.core.celery import job_queue
    from app.core.db import get_engine

    with get_engine().begin() as connection:  # rows that earlier modules' workers left, still live
        connection.execute(text("DELETE FROM workers"))

    log_path = tmp_path_factory.mktemp("routing-worker") / "worker.log"
    env = {
        **os.environ,
        "DISTILLERY_HEARTBEAT_SECONDS": "1",
        "DISTILLERY_RECONCILE_SECONDS": "1",
        "DISTILLERY_WORKER_ACCELERATOR": "cpu",
        "DISTILLERY_WORKER_DEVICES": "1",
    }
    queues = f"{settings.queue_name},{job_queue(settings.queue_name, 'cpu')}"
    process = start_worker(env, queue_name=queues, log_path=log_path)
    yield process
    if stop(process) not in (0, -15):
        print(log_path.read_text()[-5000:])


def live_workers(client: Any, timeout: float = 60, devices: int | None = None) -> list[dict[str, Any]]:
    """The workers list (those offering `devices` when given) once it is not empty."""
    deadline = time.monotonic() + timeout
    while True:
        workers: list[dict[str, Any]] = client.get("/v1/workers").json()["data"]
        workers = [worker for worker in workers if devices is None or worker["devices"] == devices]
        if workers or time.monotonic() > deadline:
            return workers
        time.sleep(0.5)


def test_a_cpu_worker_runs_auto_jobs_and_a_cuda_job_waits_for_resources(
    cpu_worker: Any,
    client: Any,
    distill_spec: dict[str, Any],
    wait_for: Callable[..., dict[str, Any]],
) -> None:
    # an earlier module's worker still stopping may heartbeat once more: ours is the one with one device
    [worker] = live_workers(client, devices=1)
    cuda_job = client.post("/v1/jobs", json={**distill_spec, "resources": {"accelerator": "cuda"}}).json()
    quick = {**distill_spec, "training": {**distill_spec["training"], "epochs": 1}}
    cpu_job = client.post("/v1/jobs", json={**quick, "resources": {"accelerator": "cpu"}}).json()

    assert wait_for(client, cpu_job["id"])["status"] == "succeeded"
    waiting = wait_for(
        client, cuda_job["id"], until=lambda job: job["waiting_for"] == "resources", timeout=60
    )

    assert waiting["status"] == "queued" and waiting["attempts"] == 0
    events = client.get(f"/v1/jobs/{cuda_job['id']}/events").json()["data"]
    assert any(event["data"] and event["data"].get("waiting_for") == "resources" for event in events)
    assert 'distillery_queued_jobs{waiting_for="resources"} 1.0' in client.get("/metrics").text
    assert worker["accelerator"] == "cpu" and worker["devices"] == 1
    assert "host" not in worker and worker["id"].startswith("wkr_")
    assert {"python", "distillery"} <= set(worker["versions"])
    live_cpu = [each for each in live_workers(client, timeout=0) if each["accelerator"] == "cpu"]
    live_line = f'distillery_workers_live{{accelerator="cpu"}} {float(len(live_cpu))}'
    assert live_line in client.get("/metrics").text


def test_distillery_worker_offers_the_devices_and_accelerator_it_is_given(
    settings: Any, client: Any, tmp_path: Any
) -> None:
    import sys

    command = [sys.executable, "-m", "distillery.cli", "worker", "--devices", "3", "--accelerator", "cpu"]
    with (tmp_path / "worker.log").open("wb") as log:
        process = subprocess.Popen(command, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    code = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = live_workers(client, devices=3)
            if workers:
                break
            time.sleep(0.5)
        [worker] = workers
        assert (worker["accelerator"], worker["concurrency"]) == ("cpu", 3)
    finally:
        code = stop(process)
    if code in (0, -15):  # a worker that stops leaves the registry (one killed ages out after the lease)
        assert not live_workers(client, timeout=0, devices=3)
