"""The report of a distillation: sizes, metrics, retention and latency of student and teacher; the curves."""

import json

import pytest
import torch
from engine_helpers import RecordingCallbacks


@pytest.fixture(scope="module")
def distilled(engine_env, tmp_path_factory):
    """A response distillation into a student made of every other teacher layer."""
    from distillery.jobspec import JobSpec
    from engine.run import run_job

    workdir = tmp_path_factory.mktemp("report")
    spec = JobSpec.model_validate(
        {
            "teacher": {"path": "bert-sentiment"},
            "student": {"init": "teacher_layers"},
            "data": {"train_file": "file-sentiment-csv", "test_file": "file-sentiment", "max_length": 32},
            "method": {"type": "response"},
            "training": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3},
        }
    )
    callbacks = RecordingCallbacks()
    result = run_job(
        spec,
        workdir=workdir,
        resolve_model=engine_env.resolve_model,
        resolve_file=engine_env.resolve_file,
        callbacks=callbacks,
        device="cpu",
    )
    return result, callbacks, workdir


def test_report_compares_student_and_teacher(distilled):
    result, _, workdir = distilled
    report = result.report
    student, teacher = report["student"], report["teacher"]
    assert json.loads((workdir / "report.json").read_text()) == report
    assert report["task"] == "sequence_classification" and report["method"] == "response"
    assert student["parameters"]["total"] < teacher["parameters"]["total"]
    for side in (student, teacher):
        assert 0 < side["parameters"]["without_embeddings"] < side["parameters"]["total"]
        assert side["size_on_disk_bytes"] > 0
        assert side["latency_ms"] > 0
        for split in ("eval", "test"):
            assert 0 <= side[split]["accuracy"] <= 1 and 0 <= side[split]["macro_f1"] <= 1
            assert set(side["stderr"][split]) == {"accuracy", "loss"}
            accuracy, examples = side[split]["accuracy"], side["examples"][split]
            assert side["stderr"][split]["accuracy"] == pytest.approx(
                (accuracy * (1 - accuracy) / examples) ** 0.5
            )
        assert side["examples"] == {
            "eval": report["training"]["eval_examples"],
            "test": report["training"]["test_examples"],
        }
    assert student["size_on_disk_bytes"] < teacher["size_on_disk_bytes"]
    latency = report["latency"]
    assert latency["batch_size"] >= 1 and latency["sequence_length"] >= 1 and latency["device"] == "cpu"
    assert latency["speedup"] == pytest.approx(teacher["latency_ms"] / student["latency_ms"])
    # The eval split chose the kept checkpoint, so retention is measured on the held-out test split.
    assert report["retention_split"] == "test"
    if teacher["test"]["accuracy"] > 0:
        expected = student["test"]["accuracy"] / teacher["test"]["accuracy"]
        assert report["retention"]["accuracy"] == pytest.approx(expected)
    assert report["training"]["test_examples"] > report["training"]["eval_examples"] > 0


def test_outputs_are_the_report_the_curves_and_the_metrics(distilled):
    result, callbacks, workdir = distilled
    assert sorted(path.name for path in result.outputs) == ["curves.png", "metrics.jsonl", "report.json"]
    assert (workdir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert {record["split"] for record in records} == {"train", "eval"}
    assert any(m.startswith("loaded teacher (") and "parameters)" in m for m in callbacks.messages)
    assert any(m.startswith("epoch 1/1 eval accuracy") for m in callbacks.messages)
    assert any(split == "eval" for split, _, _ in callbacks.metrics)


def test_the_report_and_the_first_event_say_which_precision_and_why(distilled):
    from engine.training.precision import choose_precision

    result, callbacks, _ = distilled
    chosen = choose_precision("auto", torch.device("cpu"))  # the spec leaves the default, auto
    training = result.report["training"]
    assert training["precision"] == chosen.precision
    assert training["precision_reason"] == chosen.reason and training["precision_reason"].startswith("auto: ")
    assert callbacks.messages[0] == f"precision {chosen.precision} ({chosen.reason})"


def test_the_student_keeps_every_other_teacher_layer(distilled):
    from transformers import AutoConfig

    result, _, _ = distilled
    assert AutoConfig.from_pretrained(result.student_dir).num_hidden_layers == 2


def test_the_moving_average_of_the_curves_averages_a_trailing_window():
    from engine.curves import moving_average

    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert moving_average([2.0, 4.0], 1) == [2.0, 4.0]


def test_train_metrics_report_examples_and_tokens_per_second(distilled):
    _, callbacks, _ = distilled
    train = [metrics for split, _, metrics in callbacks.metrics if split == "train"]
    assert train
    for metrics in train:
        assert metrics["examples_per_second"] > 0
        # An example has at least its [CLS] and [SEP] tokens and at most max_length (32), padding excluded.
        examples, tokens = metrics["examples_per_second"], metrics["tokens_per_second"]
        assert 2 * examples <= tokens <= 32 * examples
