"""A real Celery worker process on the test database and Redis queue, and tiny assets for its jobs."""

import functools
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for_job
from service_processes import start_worker, stop
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows


@pytest.fixture(scope="module")
def worker_process(
    settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """`celery -A worker worker` as deployed, heartbeating every second; stopped after the module."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {**os.environ, "DISTILLERY_HEARTBEAT_SECONDS": "1", "DISTILLERY_RECONCILE_SECONDS": "3600"}
    process = start_worker(env, queue_name=settings.queue_name, log_path=log_path)
    yield process
    if stop(process) not in (0, -15):
        print(log_path.read_text()[-5000:])


@pytest.fixture
def teacher_path(model_root: Path) -> str:
    """A tiny BERT sentiment classifier under the model root; returns its reference path."""
    if not (model_root / "tiny-teacher" / "config.json").exists():
        save_tiny_bert_classifier(model_root / "tiny-teacher")
    return "tiny-teacher"


@pytest.fixture
def train_file(client: Any) -> str:
    """An uploaded dataset of 160 learnable sentiment rows; returns its id."""
    response = client.post("/v1/files", files={"file": ("sentiment.jsonl", jsonl_bytes(sentiment_rows(160)))})
    assert response.status_code == 201, response.text
    file_id: str = response.json()["id"]
    return file_id


@pytest.fixture
def distill_spec(teacher_path: str, train_file: str) -> dict[str, Any]:
    """Response KD from the tiny teacher into a one-layer student copied from it."""
    return {
        "teacher": {"path": teacher_path},
        "student": {"init": "teacher_layers", "layers": [0]},
        "data": {"train_file": train_file, "max_length": 16},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "training": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "warmup_ratio": 0.0},
    }


@pytest.fixture
def wait_for() -> Callable[..., dict[str, Any]]:
    """Poll a job until `until(job)` holds (default: a terminal status); returns the job."""
    return functools.partial(wait_for_job, timeout=600, interval=0.5)
