"""report.json: sizes, eval metrics, retention and inference latency of the student and its teacher."""

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from engine.evaluation import SplitMeasures
from engine.models import count_parameters

WARMUP_RUNS = 2
TIMED_RUNS = 7
# For lower-is-better metrics retention is teacher / student, so 1.0 still means "as good as the teacher".
RETENTION_METRICS = {
    "sequence_classification": {"accuracy": True, "macro_f1": True},
    "causal_lm": {"perplexity": False},
}


def size_on_disk(path: Path | None) -> int | None:
    """Bytes of every file under a directory (or of one file)."""
    if path is None or not path.exists():
        return None
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


@torch.inference_mode()
def measure_latency_ms(
    model: nn.Module,
    batch: dict[str, Tensor],
    *,
    autocast: Callable[[], AbstractContextManager[object]] = nullcontext,
    warmup_runs: int = WARMUP_RUNS,
    timed_runs: int = TIMED_RUNS,
) -> float:
    """Median wall time of a forward pass over the batch, after warm-up runs, in milliseconds."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    inputs = {key: value.to(device) for key, value in batch.items() if key != "labels"}
    timings = []
    for run in range(warmup_runs + timed_runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with autocast():
            model(**inputs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if run >= warmup_runs:
            timings.append((time.perf_counter() - start) * 1000)
    model.train(was_training)
    return statistics.median(timings)


def retention(
    task: str, student: dict[str, float] | None, teacher: dict[str, float] | None
) -> dict[str, float] | None:
    """Student metric / teacher metric (inverted for lower-is-better metrics such as perplexity)."""
    if not student or not teacher:
        return None
    ratios = {}
    for name, higher_is_better in RETENTION_METRICS[task].items():
        numerator, denominator = (
            (student[name], teacher[name]) if higher_is_better else (teacher[name], student[name])
        )
        ratios[name] = numerator / denominator if denominator else None
    return {name: value for name, value in ratios.items() if value is not None}


def model_summary(
    model: nn.Module | None,
    directory: Path | None,
    measures: SplitMeasures | None,
    latency_ms: float | None,
) -> dict[str, Any]:
    """Parameter counts, size on disk, eval and test metrics and latency of one model; null where absent.

    `stderr` gives each metric's standard error by split (macro-F1 has none), `examples` the examples
    each split measured, so a reader can tell a gain from noise.
    """
    metrics = measures.metrics if measures else None
    return {
        "parameters": count_parameters(model) if model is not None else None,
        "size_on_disk_bytes": size_on_disk(directory) if model is not None else None,
        "eval": metrics["eval"] if metrics else None,
        "test": metrics.get("test") if metrics else None,
        "stderr": measures.stderr if measures else None,
        "examples": measures.examples if measures else None,
        "latency_ms": latency_ms,
    }


def build_report(
    *,
    task: str,
    method: str,
    student: nn.Module,
    student_dir: Path,
    student_measures: SplitMeasures,
    teacher: nn.Module | None,
    teacher_dir: Path | None,
    teacher_measures: SplitMeasures | None,
    latency_batch: dict[str, Tensor],
    autocast: Callable[[], AbstractContextManager[object]],
    training: dict[str, Any],
    teacher_latency_batch: dict[str, Tensor] | None = None,
) -> dict[str, Any]:
    """The report of a finished run; teacher fields are null when there is no teacher.

    Metrics are keyed by split (`eval`, and `test` when the job has a test file); retention is taken on
    the test split when there is one, since the eval split also chose the kept checkpoint. A teacher
    with another tokenizer is timed on `teacher_latency_batch`, the same texts in its own tokens.
    """
    student_ms = measure_latency_ms(student, latency_batch, autocast=autocast)
    teacher_ms = (
        measure_latency_ms(teacher, teacher_latency_batch or latency_batch, autocast=autocast)
        if teacher is not None
        else None
    )
    device = next(student.parameters()).device
    split = "test" if "test" in student_measures.metrics else "eval"
    teacher_split = teacher_measures.metrics[split] if teacher_measures else None
    return {
        "task": task,
        "method": method,
        "student": model_summary(student, student_dir, student_measures, student_ms),
        "teacher": model_summary(teacher, teacher_dir, teacher_measures, teacher_ms),
        "retention": retention(task, student_measures.metrics[split], teacher_split),
        "retention_split": split,
        "latency": {
            "device": str(device),
            "batch_size": int(latency_batch["input_ids"].shape[0]),
            "sequence_length": int(latency_batch["input_ids"].shape[1]),
            "warmup_runs": WARMUP_RUNS,
            "timed_runs": TIMED_RUNS,
            "statistic": "median",
            "student_ms": student_ms,
            "teacher_ms": teacher_ms,
            "speedup": teacher_ms / student_ms if teacher_ms is not None and student_ms > 0 else None,
        },
        "training": training,
    }


def parallel_summary(*, devices: int, parallelism: str, batch_size: int, accumulation: int) -> dict[str, Any]:
    """How many devices trained, how (single, ddp, fsdp), and the batch each took of every global batch."""
    return {
        "devices": devices,
        "parallelism": parallelism,
        "per_device_batch": batch_size // devices,
        "global_batch": batch_size,
        "examples_per_optimizer_step": batch_size * accumulation,
    }
