"""One job over two CPU processes (torchrun, gloo): the same training as one process, split in two.

Tolerances: fp32 on the CPU is deterministic in each process, and two processes see the same global
batches as one (each rank takes every other example of a batch). What differs is the order of sums:
each rank's batch mean, the all-reduce of gradients (a sum of two halves instead of one sum over the
batch) and of the logged terms. Each such sum differs by a few ulps (~1e-7 relative); over a few Adam
steps the differences grow but stay far below 1e-4 relative, which is the bound the tests use.
"""

from pathlib import Path
from typing import Any

import pytest
from torchrun import run_ranks

pytestmark = pytest.mark.slow

RELATIVE = 1e-4


def job_arguments(engine_env: Any, spec: dict[str, Any], workdir: Path, **extra: Any) -> dict[str, Any]:
    """The job script's arguments for `spec` against the tiny models and files of `engine_env`."""
    return {
        "spec": spec,
        "workdir": str(workdir),
        "model_root": str(engine_env.model_root),
        "files": {name: str(path) for name, path in engine_env.files.items()},
        **extra,
    }


def classifier_spec(method: dict[str, Any], *, devices: int, parallelism: str = "auto", **training: Any) -> dict[str, Any]:
    """A sentiment job whose student has no dropout, so one and two processes compute the same steps."""
    return {
        "task": "sequence_classification",
        "teacher": {"path": "bert-sentiment"},
        "student": {
            "init": "config",
            "config": {"num_hidden_layers": 2, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
        },
        "data": {"train_file": "file-sentiment", "eval_fraction": 0.25},
        "method": method,
        "resources": {"devices": devices},
        "training": {
            "epochs": 1,
            "batch_size": 8,
            "learning_rate": 3e-3,
            "warmup_ratio": 0.0,
            "seed": 0,
            "parallelism": parallelism,
            "max_grad_norm": None,
            **training,
        },
    }


def train_curve(record: dict[str, Any]) -> list[tuple[int, float]]:
    """The loss rank 0 reported at each logged training step."""
    return [(step, metrics["loss"]) for split, step, metrics in record["metrics"] if split == "train"]


def assert_close_curves(first: list[tuple[int, float]], second: list[tuple[int, float]]) -> None:
    assert [step for step, _ in first] == [step for step, _ in second]
    for (_, a), (_, b) in zip(first, second, strict=True):
        assert b == pytest.approx(a, rel=RELATIVE)


def test_two_processes_follow_the_loss_curve_of_one_with_the_same_global_batch(engine_env, tmp_path):
    method = {"type": "response", "temperature": 2.0, "alpha": 0.5}
    single = run_ranks(
        job_arguments(engine_env, classifier_spec(method, devices=1), tmp_path / "one" / "work"),
        tmp_path / "one",
        processes=1,
    )
    double = run_ranks(
        job_arguments(engine_env, classifier_spec(method, devices=2, parallelism="ddp"), tmp_path / "two" / "work"),
        tmp_path / "two",
        processes=2,
    )
    assert_close_curves(train_curve(single[0]), train_curve(double[0]))
    assert double[0]["report"]["training"]["devices"] == 2
    assert double[0]["report"]["training"]["parallelism"] == "ddp"
    assert double[0]["report"]["training"]["per_device_batch"] == 4
    assert double[1]["student_dir"] is None and double[1]["status"] == "succeeded"
    assert double[1]["messages"] == [] and double[1]["progress"] == []  # only rank 0 reports
