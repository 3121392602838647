"""Distillery's side of `bench.naive.distill_vs_naive`: the job as a JobSpec, run by `run_job` with defaults.

Runs one job:

    python -m bench.naive.engine_side JOB.json OUT.json
"""

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.naive.job import KDJob, child_main, peak_cuda_bytes
from distillery.jobspec import JobSpec
from engine.callbacks import Callbacks
from engine.run import run_job

# Log lines of run_job that open and close the training phase: after the data, teacher and student are
# ready, and once the kept student is saved (the plain side's span: trainer.train() and save_model).
TRAINING_STARTS, TRAINING_ENDS = "built student", "saved the student"


class PhaseClock(Callbacks):
    """Callbacks that note when the run's log first says each of the phase lines."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    def on_message(self, message: str, level: str = "info") -> None:  # type: ignore[override]
        for line in (TRAINING_STARTS, TRAINING_ENDS):
            if message.startswith(line):
                self.seen.setdefault(line, time.perf_counter())

    def training_seconds(self) -> float:
        """Seconds from the student being built to it being saved."""
        missing = [line for line in (TRAINING_STARTS, TRAINING_ENDS) if line not in self.seen]
        if missing:
            raise RuntimeError(f"run_job's log no longer says {missing}; update bench.naive.engine_side")
        return self.seen[TRAINING_ENDS] - self.seen[TRAINING_STARTS]


def job_spec(job: KDJob) -> JobSpec:
    """Response KD with the job's settings; the student copies the base model's layers or the teacher's."""
    student: dict[str, Any] = {"init": "teacher_layers", "layers": job.layers}
    if job.init == "base":
        student["model"] = {"path": "base"}
    return JobSpec.model_validate(
        {
            "task": "sequence_classification",
            "teacher": {"path": "teacher"},
            "student": student,
            "data": {
                "train_file": "train",
                "eval_file": "eval",
                "test_file": "test",
                "text_column": "text",
                "label_column": "label",
                "max_length": job.max_length,
            },
            "method": {"type": "response", "temperature": job.temperature, "alpha": job.alpha},
            "training": {
                "epochs": job.epochs,
                "batch_size": job.batch_size,
                "learning_rate": job.learning_rate,
                "warmup_ratio": job.warmup_ratio,
                "weight_decay": job.weight_decay,
                "seed": job.seed,
                "freeze_embeddings": job.freeze_embeddings,
            },
        }
    )


def run(job: KDJob) -> dict[str, Any]:
    """Run the job with run_job; `train_seconds` spans training and saving the student (see PhaseClock)."""
    models = {"teacher": Path(job.teacher_dir), "base": Path(job.base_dir)}
    files = {"train": Path(job.train_file), "eval": Path(job.eval_file), "test": Path(job.test_file)}
    clock = PhaseClock()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="engine-kd-") as workdir:
        result = run_job(
            job_spec(job),
            workdir=Path(workdir),
            resolve_model=lambda ref: models[str(ref.path)],
            resolve_file=files.__getitem__,
            callbacks=clock,
            device=job.device,
        )
    if result.status != "succeeded":
        raise RuntimeError(f"the job ended {result.status}")
    report = result.report
    return {
        "side": "ours",
        "train_seconds": clock.training_seconds(),
        "job_seconds": time.perf_counter() - started,
        "train_examples": report["training"]["train_examples"],
        "epochs": job.epochs,
        "steps": report["training"]["steps"],
        "eval_accuracy": report["student"]["eval"]["accuracy"],
        "test_accuracy": report["student"]["test"]["accuracy"],
        "precision": report["training"]["precision"],
        "device": report["training"]["device"],
        # The engine's one pass of the teacher over every example before training (inside train_seconds).
        "teacher_pass": report["training"].get("teacher_cache"),
        "peak_cuda_bytes": peak_cuda_bytes(job.device),
    }


if __name__ == "__main__":
    child_main(run)
