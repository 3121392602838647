"""A Ray head of the tests' own (`bench/service/ray_head.py`), a Celery worker that hands its jobs to it,
and the tiny job they run."""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for_job
from service_processes import stop
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows

from bench.service.ray_head import RayHead
from bench.service.ray_head import ray_head as running_ray_head
from worker.cli import worker_arguments


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    """A one-node Ray cluster with 2 CPUs, for this module only."""
    with running_ray_head(cpus=2) as head:
        yield head


def start_job_worker(env: dict[str, str], *, queue_name: str, hostname: str, log_path: Path) -> Any:
    """`celery -A worker worker` on a queue and its cpu queue, one job at a time."""
    arguments = worker_arguments(
        pool="prefork", concurrency=1, queue=f"{queue_name},{queue_name}.cpu", hostname=hostname
    )
    command = [sys.executable, "-m", "celery", "-A", "worker", *arguments]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def ray_worker(
    ray_head: RayHead, settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """A job worker with DISTILLERY_EXECUTOR=ray on the tests' Ray head, heartbeating every second."""
    log_path = tmp_path_factory.mktemp("ray-worker") / "worker.log"
    env = {
        **os.environ,
        "DISTILLERY_EXECUTOR": "ray",
        "DISTILLERY_RAY_ADDRESS": ray_head.address,
        "DISTILLERY_HEARTBEAT_SECONDS": "1",
        "DISTILLERY_RECONCILE_SECONDS": "3600",
    }
    process = start_job_worker(env, queue_name=settings.queue_name, hostname="ray@%h", log_path=log_path)
    yield process
    if stop(process) not in (0, -15):
        print(log_path.read_text()[-5000:])


@pytest.fixture
def ray_client(make_client: Callable[..., Any], settings: Any, ray_worker: Any) -> Any:
    """A client of an API configured for the ray executor, while the ray-executor worker runs."""
    return make_client(api_key=settings.dev_api_key, executor="ray")


@pytest.fixture
def distill_spec(model_root: Path, client: Any) -> dict[str, Any]:
    """Response KD from a tiny teacher into a one-layer student, on two CPU processes."""
    if not (model_root / "tiny-teacher" / "config.json").exists():
        save_tiny_bert_classifier(model_root / "tiny-teacher")
    upload = {"file": ("sentiment.jsonl", jsonl_bytes(sentiment_rows(160)))}
    response = client.post("/v1/files", files=upload)
    assert response.status_code == 201, response.text
    return {
        "teacher": {"path": "tiny-teacher"},
        "student": {"init": "teacher_layers", "layers": [0]},
        "data": {"train_file": response.json()["id"], "max_length": 16},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "resources": {"accelerator": "cpu", "devices": 2},
        "training": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "warmup_ratio": 0.0},
    }


def wait_for(
    client: Any, job_id: str, until: Callable[[dict[str, Any]], bool] | None = None, timeout: float = 120
) -> dict[str, Any]:
    """Poll a job until `until(job)` holds (default: a terminal status); returns the job."""
    return wait_for_job(client, job_id, until, timeout)


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
