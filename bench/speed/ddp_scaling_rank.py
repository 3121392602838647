"""One rank of the DDP scaling benchmark: run the job with `run_job` and, on rank 0, write what it measured.

Run by `bench.speed.ddp_scaling` as a plain process or under torchrun: `python -m
bench.speed.ddp_scaling_rank ARGS.json`, where ARGS.json holds the spec, the workdir, the teacher's
directory, the data files and where to write the measurement.
"""

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Literal

import torch

from distillery.jobspec import JobSpec, ModelRef
from engine.callbacks import Callbacks
from engine.run import run_job


class ThroughputCallbacks(Callbacks):
    """Keeps the training windows' examples per second the engine reports."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_metrics(
        self, *, step: int, epoch: float, split: Literal["train", "eval"], metrics: dict[str, float]
    ) -> None:
        if split == "train":
            self.rates.append(metrics["examples_per_second"])


def main(arguments_path: str) -> None:
    """Run the job; rank 0 writes its throughput, global batch, test accuracy and wall time."""
    arguments: dict[str, Any] = json.loads(Path(arguments_path).read_text())
    torch.set_num_threads(int(arguments["threads"]))
    models, files = Path(arguments["models"]), arguments["files"]
    callbacks = ThroughputCallbacks()
    started = time.perf_counter()

    def resolve_model(ref: ModelRef) -> Path:
        assert ref.path is not None
        return models / ref.path

    result = run_job(
        JobSpec.model_validate(arguments["spec"]),
        workdir=Path(arguments["workdir"]),
        resolve_model=resolve_model,
        resolve_file=lambda file_id: Path(files[file_id]),
        callbacks=callbacks,
        device="cpu" if arguments.get("device", "cpu") == "cpu" else None,  # None: cuda:LOCAL_RANK
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return
    training, student = result.report["training"], result.report["student"]
    measured = {
        "examples_per_second": sum(callbacks.rates) / max(len(callbacks.rates), 1),
        "global_batch": training["global_batch"],
        "per_device_batch": training["per_device_batch"],
        "devices": training["devices"],
        "parallelism": training["parallelism"],
        "test_accuracy": (student.get("test") or {}).get("accuracy"),
        "wall_seconds": time.perf_counter() - started,
        "steps": training["steps"],
    }
    Path(arguments["out"]).write_text(json.dumps(measured))


if __name__ == "__main__":
    main(sys.argv[1])
