"""bench.naive.distill_vs_naive at a tiny scale: the cached teacher, both pipelines on a job, the verdicts."""

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows

from bench.naive import engine_side, naive_side
from bench.naive.job import KDJob, TeacherRecipe
from bench.naive.report import build_summary, print_summary
from bench.naive.teacher import cache_key, cached_teacher


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy machine each parallel op waits for a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_job(tmp_path_factory: pytest.TempPathFactory) -> KDJob:
    """A 4-layer tiny BERT as the base, a teacher fine-tuned from it, and small splits of sentiment rows."""
    root = tmp_path_factory.mktemp("distill-vs-naive")
    base = save_tiny_bert_classifier(root / "base", layers=4)
    files = {}
    for split, rows, seed in (("train", 96, 1), ("eval", 32, 2), ("test", 32, 3)):
        files[split] = root / f"{split}.jsonl"
        files[split].write_bytes(jsonl_bytes(sentiment_rows(rows, seed=seed)))
    recipe = TeacherRecipe(epochs=3, learning_rate=3e-3, batch_size=16, max_length=16)
    teacher, info = cached_teacher(
        base_dir=base, files=files, recipe=recipe, cache_root=root / "teachers", device="cpu"
    )
    assert not info["cached"]
    return KDJob(
        train_file=str(files["train"]),
        eval_file=str(files["eval"]),
        test_file=str(files["test"]),
        teacher_dir=str(teacher),
        base_dir=str(base),
        layers=[0, 2],
        batch_size=16,
        learning_rate=3e-3,
        max_length=16,
    )


def test_the_teacher_is_reused_from_its_cache_when_the_settings_match(tiny_job: KDJob) -> None:
    teacher = Path(tiny_job.teacher_dir)
    files = {split: Path(getattr(tiny_job, f"{split}_file")) for split in ("train", "eval", "test")}
    recipe = TeacherRecipe(epochs=3, learning_rate=3e-3, batch_size=16, max_length=16)

    again, info = cached_teacher(
        base_dir=Path(tiny_job.base_dir), files=files, recipe=recipe, cache_root=teacher.parent, device="cpu"
    )

    assert info["cached"] and again == teacher
    assert (teacher / "model.safetensors").is_file() and info["test_accuracy"] > 0.5
    assert teacher.name == cache_key(recipe, Path(tiny_job.base_dir), files)
    assert cache_key(replace(recipe, epochs=1), Path(tiny_job.base_dir), files) != teacher.name
    files["train"] = files["eval"]
    assert cache_key(recipe, Path(tiny_job.base_dir), files) != teacher.name  # other data, another teacher


@pytest.mark.parametrize("init", ["base", "teacher"])
def test_both_pipelines_train_the_same_student_on_the_same_job(tiny_job: KDJob, init: str) -> None:
    job = replace(tiny_job, init=init)

    plain, ours = naive_side.run(job), engine_side.run(job)

    for result in (plain, ours):
        assert result["steps"] == 2 * 96 // 16  # two epochs of the same batches
        assert result["train_examples"] == 96
        assert 0 < result["train_seconds"] < result["job_seconds"]
        assert 0 <= result["eval_accuracy"] <= 1 and 0 <= result["test_accuracy"] <= 1
    assert plain["precision"] == "fp32"  # Trainer's default, as the pipeline it stands for
    assert ours["precision"] in ("fp32", "bf16")
    assert (plain["side"], ours["side"]) == ("plain", "ours")
    if init == "base":
        same = naive_side.run(replace(job, plain_precision="auto"))
        assert same["precision"] == ours["precision"]


def run(seconds: float, test_accuracy: float, job_seconds: float = 100.0) -> dict[str, Any]:
    return {
        "train_seconds": seconds,
        "job_seconds": job_seconds,
        "train_examples": 4000,
        "epochs": 2,
        "eval_accuracy": 0.7,
        "test_accuracy": test_accuracy,
        "peak_rss_bytes": 2**30,
        "precision": "fp32",
    }


def test_speedup_and_accuracy_delta_are_judged_against_the_precisions_target() -> None:
    runs = {
        "base": {"plain": run(300.0, 0.750), "ours": run(100.0, 0.748)},
        "teacher": {"plain": run(600.0, 0.760), "ours": run(100.0, 0.750)},
    }

    fp32 = build_summary(runs, bf16_native=False)
    in_bf16 = {init: {**pair, "ours": {**pair["ours"], "precision": "bf16"}} for init, pair in runs.items()}
    bf16 = build_summary(in_bf16, bf16_native=True)

    base, teacher = fp32["comparisons"]["base"], fp32["comparisons"]["teacher"]
    assert base["speedup"] == pytest.approx(3.0) and base["speedup_met"]  # 2.5x is enough in fp32
    assert base["accuracy_delta"] == pytest.approx(-0.2) and base["accuracy_delta_met"]
    assert teacher["speedup"] == pytest.approx(6.0)
    assert teacher["accuracy_delta"] == pytest.approx(-1.0) and not teacher["accuracy_delta_met"]
    assert not bf16["comparisons"]["base"]["speedup_met"]  # 5x where bf16 is native
    assert fp32["runs"]["base"]["ours"]["examples_per_second"] == pytest.approx(80.0)
    assert not fp32["all_targets_met"]

    output = Console(record=True, width=200)
    summary = {
        **bf16,
        "machine": {
            "device": "cpu",
            "precision": "bf16",
            "precision_reason": "auto",
            "cpu_model": "a CPU",
            "cores": 2,
            "threads": 2,
            "flags": {"avx512_bf16": True},
            "torch": "2",
        },
        "load_average_before": [0.0],
        "load_average_after": [0.0],
    }
    print_summary(summary, output)
    text = output.export_text()
    assert "base init: speedup 3.00x (target >= 5: missed by 2.00x)" in text
    assert "accuracy delta -1.00 points (target >= -0.5: missed by 0.50 points)" in text


def test_both_sides_in_one_precision_are_judged_against_2_5x_even_where_bf16_is_native() -> None:
    in_bf16 = {**run(250.0, 0.75), "precision": "bf16"}
    runs = {"base": {"plain": in_bf16, "ours": {**in_bf16, "train_seconds": 100.0}}}

    comparison = build_summary(runs, bf16_native=True)["comparisons"]["base"]

    assert comparison["speedup_target"] == 2.5 and comparison["speedup_met"]
