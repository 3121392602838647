"""Sweeps on the real API and database: a base job on tiny assets, and a wait for a sweep's end."""

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polling
import pytest
from service_processes import start_worker, stop
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows

# Quick passes, so that a sweep whose worker was killed is advanced again within seconds.
WORKER_ENV = {
    "DISTILLERY_HEARTBEAT_SECONDS": "1",
    "DISTILLERY_RECONCILE_SECONDS": "2",
    "DISTILLERY_LEASE_SECONDS": "6",
}


@pytest.fixture
def teacher_path(model_root: Path) -> str:
    """A tiny BERT sentiment classifier under the model root; returns its reference path."""
    if not (model_root / "tiny-teacher" / "config.json").exists():
        save_tiny_bert_classifier(model_root / "tiny-teacher")
    return "tiny-teacher"


def upload(client: Any, count: int, seed: int) -> str:
    """Upload `count` sentiment rows; returns the file's id."""
    content = jsonl_bytes(sentiment_rows(count, seed=seed))
    response = client.post("/v1/files", files={"file": ("sentiment.jsonl", content)})
    assert response.status_code == 201, response.text
    file_id: str = response.json()["id"]
    return file_id


@pytest.fixture
def base_spec(client: Any, teacher_path: str) -> dict[str, Any]:
    """Response KD from the tiny teacher into a one-layer student, with eval and test files."""
    return {
        "teacher": {"path": teacher_path},
        "student": {"init": "teacher_layers", "layers": [0]},
        "data": {
            "train_file": upload(client, 64, seed=0),
            "eval_file": upload(client, 32, seed=1),
            "test_file": upload(client, 32, seed=2),
            "max_length": 16,
        },
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "training": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "warmup_ratio": 0.0},
    }


@pytest.fixture
def wait_for_sweep() -> Callable[..., dict[str, Any]]:
    """Poll a sweep until `until(sweep)` holds (default: finished); returns it."""
    return polling.wait_for_sweep


@pytest.fixture
def start_sweep_worker(
    settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start `celery -A worker worker` processes with quick reconciler passes; all stopped at the end."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start() -> subprocess.Popen[bytes]:
        log_path = tmp_path_factory.mktemp("worker") / "worker.log"
        process = start_worker(
            {**os.environ, **WORKER_ENV}, queue_name=settings.queue_name, log_path=log_path
        )
        started.append((process, log_path))
        return process

    yield start
    for process, log_path in started:
        if process.poll() is None and stop(process) not in (0, -15):
            print(log_path.read_text()[-5000:])
