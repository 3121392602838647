"""One distillation job, as a worker runs it, with the teacher cache its settings give (a test's subprocess).

Usage: python cache_job.py ASSETS WORKDIR RESULT [RENDEZVOUS COUNT]. The store, the data folder and the
cache bound come from DISTILLERY_* and AWS_* variables. With RENDEZVOUS, the job waits after missing the
shared store until COUNT jobs have missed it, so that every one computes and publishes at the same time.
"""

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from app.core.config import get_settings
from distillery.jobspec import JobSpec
from engine.callbacks import Callbacks
from engine.run import run_job
from worker.execution import teacher_cache_config
from worker.shared_teacher_cache import SharedTeacherCache


def job_spec() -> dict[str, Any]:
    """Response KD from the tiny teacher, one epoch, the teacher cache on."""
    return {
        "teacher": {"path": "teacher"},
        "student": {"init": "teacher_layers", "layers": [0]},
        "data": {"train_file": "train", "max_length": 16},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "training": {
            "epochs": 1,
            "batch_size": 16,
            "learning_rate": 1e-3,
            "warmup_ratio": 0.0,
            "seed": 0,
            "teacher_cache": "on",
        },
    }


class Messages(Callbacks):
    """Keeps the job's log lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def on_message(self, message: str, level: str = "info") -> None:  # type: ignore[override]
        self.lines.append(message)


class RendezvousAfterAMiss(SharedTeacherCache):
    """The shared cache, whose fetch waits after a miss until `count` jobs have missed."""

    def __init__(self, shared: SharedTeacherCache, folder: Path, count: int) -> None:
        super().__init__(shared.store, max_bytes=shared.max_bytes)
        self.folder, self.count = folder, count

    def fetch(self, key: str, into: Path) -> bool:
        found = super().fetch(key, into)
        if not found:
            (self.folder / f"missed-{time.time_ns()}").touch()
            deadline = time.monotonic() + 60
            while len(list(self.folder.glob("missed-*"))) < self.count and time.monotonic() < deadline:
                time.sleep(0.05)
        return found


def main(assets: Path, workdir: Path, result_path: Path, rendezvous: list[str]) -> None:
    config = teacher_cache_config(get_settings())
    assert isinstance(config.shared, SharedTeacherCache)
    if rendezvous:
        shared = RendezvousAfterAMiss(config.shared, Path(rendezvous[0]), int(rendezvous[1]))
        config = dataclasses.replace(config, shared=shared)
    messages = Messages()
    result = run_job(
        JobSpec.model_validate(job_spec()),
        workdir=workdir,
        resolve_model=lambda ref: assets / str(ref.path),
        resolve_file=lambda file_id: assets / f"{file_id}.jsonl",
        callbacks=messages,
        device="cpu",
        teacher_cache=config,
    )
    summary = {
        "status": result.status,
        "cache": result.report["training"]["teacher_cache"],
        "messages": messages.lines,
        "local_cache": str(config.root),
    }
    result_path.write_text(json.dumps(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:])
