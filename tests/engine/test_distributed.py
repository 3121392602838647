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
from torchrun import launch, run_ranks

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


def classifier_spec(
    method: dict[str, Any], *, devices: int, parallelism: str = "auto", **training: Any
) -> dict[str, Any]:
    """A sentiment job whose student has no dropout, so one and two processes compute the same steps."""
    return {
        "task": "sequence_classification",
        "teacher": {"path": "bert-sentiment"},
        "student": {
            "init": "config",
            "config": {
                "num_hidden_layers": 2,
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
            },
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
            # fp32 everywhere: `auto` picks bf16 on a CPU with native bf16,
            # whose rounding the 1e-4 bound is not for.
            "precision": "fp32",
            **training,
        },
    }


def train_curve(record: dict[str, Any]) -> list[tuple[int, float]]:
    """The loss rank 0 reported at each logged training step."""
    return [(step, metrics["loss"]) for split, step, metrics in record["metrics"] if split == "train"]


def assert_close_curves(
    first: list[tuple[int, float]], second: list[tuple[int, float]], relative: float = RELATIVE
) -> None:
    assert [step for step, _ in first] == [step for step, _ in second]
    for (_, a), (_, b) in zip(first, second, strict=True):
        assert b == pytest.approx(a, rel=relative)


# response: the teacher's outputs stored by a pass split over the ranks; per-example losses, so the
# curves agree to the summation order (6e-8 relative at most here; RELATIVE bounds it).
# feature: a narrower student, so projections outside the student train too and their gradients must
# be averaged as well. Its loss is a mean over tokens: each rank's share is weighed by its examples,
# not its tokens, so a step whose shares hold different token counts moves a little differently (as
# in any DDP trainer): 1.3e-3 relative at most here.
@pytest.mark.parametrize(
    ("method", "student_config", "relative"),
    [
        ({"type": "response", "temperature": 2.0, "alpha": 0.5}, {}, RELATIVE),
        ({"type": "feature", "feature_weight": 1.0}, {"hidden_size": 16, "intermediate_size": 32}, 1e-2),
    ],
)
def test_two_processes_follow_the_loss_curve_of_one_with_the_same_global_batch(
    engine_env, tmp_path, method, student_config, relative
):
    one = classifier_spec(method, devices=1)
    two = classifier_spec(method, devices=2, parallelism="ddp")
    for spec in (one, two):
        spec["student"]["config"].update(student_config)
    single = run_ranks(
        job_arguments(engine_env, one, tmp_path / "one" / "work"), tmp_path / "one", processes=1
    )
    double = run_ranks(
        job_arguments(engine_env, two, tmp_path / "two" / "work"), tmp_path / "two", processes=2
    )
    assert_close_curves(train_curve(single[0]), train_curve(double[0]), relative)
    training = double[0]["report"]["training"]
    assert (training["devices"], training["parallelism"], training["per_device_batch"]) == (2, "ddp", 4)
    assert training["global_batch"] == 8
    assert double[1]["student_dir"] is None and double[1]["status"] == "succeeded"
    assert double[1]["messages"] == [] and double[1]["progress"] == []  # only rank 0 reports


def eval_metrics_of_saved_student(
    engine_env: Any, spec: dict[str, Any], student_dir: Path, tmp_path: Path
) -> dict[str, float]:
    """The eval metrics of the student as `from_pretrained` loads it, on the job's eval split."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distillery.jobspec import JobSpec
    from engine.batching import eval_batch_order, iterate_batches
    from engine.data import prepare_data
    from engine.evaluation import evaluate

    job = JobSpec.model_validate(spec)
    model = AutoModelForSequenceClassification.from_pretrained(student_dir)
    data = prepare_data(
        job.data,
        job.task,
        AutoTokenizer.from_pretrained(student_dir),
        seed=job.training.seed,
        resolve_file=engine_env.resolve_file,
        cache_dir=tmp_path / "data-cache",
        teacher_id2label=dict(model.config.id2label),
    )
    order = eval_batch_order(list(data.eval["length"]), 32)
    batches = iterate_batches(data.eval, order, pad_token_id=data.pad_token_id)
    return evaluate(model, batches, task=job.task, device="cpu")


def test_fsdp_cancels_on_every_rank_resumes_from_its_shards_and_saves_a_loadable_student(
    engine_env, tmp_path
):
    spec = classifier_spec(
        {"type": "response", "temperature": 2.0, "alpha": 0.5},
        devices=2,
        parallelism="fsdp",
        epochs=2,
        eval_every_steps=3,
    )
    workdir = tmp_path / "work"
    arguments = job_arguments(engine_env, spec, workdir)
    # Rank 0's callbacks ask to stop after step 4; rank 1's would stop at once but are never asked.
    first = run_ranks({**arguments, "stop_after_step": 4}, tmp_path / "first", processes=2)
    assert [record["status"] for record in first] == ["cancelled", "cancelled"]
    assert [record["report"]["steps"] for record in first] == [4, 4]
    assert (workdir / "checkpoints" / "step-3" / "dcp").is_dir()

    second = run_ranks(arguments, tmp_path / "second", processes=2)
    main = second[0]
    assert main["status"] == "succeeded" and "resumed from the checkpoint at step 3" in main["messages"]
    assert main["report"]["training"]["parallelism"] == "fsdp"
    evaluations = first[0]["metrics"] + main["metrics"]
    kept = {step: metrics for split, step, metrics in evaluations if split == "eval"}[
        main["report"]["training"]["best_step"]
    ]
    assert main["report"]["student"]["eval"] == pytest.approx(kept, rel=RELATIVE)
    loaded = eval_metrics_of_saved_student(engine_env, spec, Path(main["student_dir"]), tmp_path)
    assert loaded == pytest.approx(kept, rel=RELATIVE)


def test_a_checkpoint_sharded_by_two_processes_resumes_in_one(engine_env, tmp_path):
    spec = classifier_spec(
        {"type": "supervised"}, devices=2, parallelism="fsdp", epochs=1, eval_every_steps=3, max_steps=5
    )
    workdir = tmp_path / "work"
    arguments = job_arguments(engine_env, spec, workdir)
    run_ranks({**arguments, "stop_after_step": 4}, tmp_path / "first", processes=2)
    single = {**arguments, "spec": {**spec, "resources": {"devices": 1}}}
    [resumed] = run_ranks(single, tmp_path / "second", processes=1)
    assert resumed["status"] == "succeeded"
    assert "resumed from the checkpoint at step 3" in resumed["messages"]
    assert resumed["report"]["training"]["steps"] == 5


def test_gkd_on_a_causal_lm_trains_under_fsdp(engine_env, tmp_path):
    spec = {
        "task": "causal_lm",
        "teacher": {"path": "gpt2-counting"},
        "student": {"init": "config", "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-counting", "max_length": 32},
        "method": {"type": "gkd", "lmbda": 0.5, "generation": {"max_new_tokens": 4}},
        "resources": {"devices": 2},
        "training": {
            "epochs": 1,
            "batch_size": 8,
            "learning_rate": 3e-3,
            "seed": 0,
            "parallelism": "fsdp",
            "max_steps": 4,
        },
    }
    records = run_ranks(job_arguments(engine_env, spec, tmp_path / "work"), tmp_path, processes=2)
    training = records[0]["report"]["training"]
    assert training["parallelism"] == "fsdp" and training["steps"] == 4
    assert training["on_policy_batches"] == 2  # sampled in step with the other rank's shards
    assert records[1]["status"] == "succeeded"


def short_ddp(spec: dict[str, Any]) -> dict[str, Any]:
    """Two DDP processes, two steps: enough for DDP to refuse a parameter the loss left out."""
    training = {"epochs": 1, "batch_size": 8, "learning_rate": 3e-3, "seed": 0, "max_steps": 2}
    return {**spec, "resources": {"devices": 2}, "training": {**training, "parallelism": "ddp"}}


# Methods that train more than the student (exit heads, a peer), a LoRA student, and ULD's student with
# its own tokenizer: every trainable parameter must reach DDP's reducer at each step.
DDP_METHODS = {
    "self": {
        "student": {"init": "teacher_layers"},
        "method": {"type": "self", "exits": [1], "keep_exit": 1},
    },
    "mutual": {"student": {"init": "teacher_layers"}, "method": {"type": "mutual"}},
    "lora": {"student": {"init": "teacher_layers", "lora": {"r": 4}}, "method": {"type": "response"}},
}


@pytest.mark.parametrize("name", sorted(DDP_METHODS))
def test_a_method_with_more_than_a_student_trains_under_ddp(engine_env, tmp_path, name):
    spec = {
        "task": "sequence_classification",
        "teacher": {"path": "bert-sentiment"},
        "data": {"train_file": "file-sentiment", "eval_fraction": 0.25},
        **DDP_METHODS[name],
    }
    records = run_ranks(job_arguments(engine_env, short_ddp(spec), tmp_path / "work"), tmp_path, processes=2)
    assert [record["status"] for record in records] == ["succeeded", "succeeded"]
    assert records[0]["report"]["training"]["parallelism"] == "ddp"


def test_uld_with_a_student_of_another_tokenizer_trains_under_ddp(engine_env, bpe_models, tmp_path):
    spec = {
        "task": "causal_lm",
        "teacher": {"path": "gpt2-bpe-teacher"},
        "student": {"init": "pretrained", "model": {"path": "gpt2-bpe-student"}},
        "data": {"train_file": "file-counting", "max_length": 32},
        "method": {"type": "response", "cross_tokenizer": "uld", "alpha": 1.0},
    }
    records = run_ranks(job_arguments(engine_env, short_ddp(spec), tmp_path / "work"), tmp_path, processes=2)
    assert records[0]["report"]["training"]["steps"] == 2


def test_a_rank_that_fails_alone_ends_the_others_instead_of_leaving_them_waiting(engine_env, tmp_path):
    spec = short_ddp(
        {
            "task": "sequence_classification",
            "teacher": {"path": "bert-sentiment"},
            "student": {"init": "teacher_layers"},
            "data": {"train_file": "file-sentiment", "eval_fraction": 0.25},
            "method": {"type": "supervised"},
        }
    )
    arguments = {**job_arguments(engine_env, spec, tmp_path / "work"), "fail_at_step": 1}
    # Rank 0 leaves the loop after step 1 and destroys its group; rank 1's next collective fails with
    # "Connection closed by peer" (gloo), or torchrun ends it first: either way within the timeout.
    finished = launch(arguments, tmp_path, processes=2, timeout=120)
    assert finished.returncode != 0
    assert "rank 0 fails alone at step 1" in finished.stderr
