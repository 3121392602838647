"""Tests for a GPU machine: skipped where nvidia-smi lists no GPU. `scripts/test --gpu` runs them."""

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for_job
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows

from worker.capacity import list_gpus

GPUS = list_gpus()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if GPUS:
        return
    skip = pytest.mark.skip(reason="no CUDA GPU (nvidia-smi lists none)")
    for item in items:
        if "tests/gpu/" in item.nodeid or item.nodeid.startswith("gpu/"):
            item.add_marker(skip)


@pytest.fixture
def distill_spec(client: Any, model_root: Path) -> dict[str, Any]:
    """Response KD from a tiny teacher into a one-layer student copied from it (as tests/worker's)."""
    if not (model_root / "tiny-teacher" / "config.json").exists():
        save_tiny_bert_classifier(model_root / "tiny-teacher")
    response = client.post("/v1/files", files={"file": ("sentiment.jsonl", jsonl_bytes(sentiment_rows(160)))})
    assert response.status_code == 201, response.text
    return {
        "teacher": {"path": "tiny-teacher"},
        "student": {"init": "teacher_layers", "layers": [0]},
        "data": {"train_file": response.json()["id"], "max_length": 16},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "training": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "warmup_ratio": 0.0},
    }


@pytest.fixture
def wait_for() -> Callable[..., dict[str, Any]]:
    """Poll a job until it ends; returns the job."""
    return functools.partial(wait_for_job, timeout=600, interval=0.5)
