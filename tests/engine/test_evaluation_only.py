"""An evaluation-only job (training.epochs 0) measures its starting student and its teacher."""

import torch
from engine_helpers import RecordingCallbacks
from transformers import AutoModelForSequenceClassification


def test_an_evaluation_only_job_reports_the_starting_student_and_saves_it_unchanged(
    run_spec, engine_env, tmp_path
):
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {"init": "pretrained", "model": {"path": "bert-sentiment"}},
        "data": {"train_file": "file-sentiment", "test_file": "file-sentiment-csv", "max_length": 32},
        "method": {"type": "response"},
        "training": {"epochs": 0, "batch_size": 8, "teacher_cache": "on"},
    }
    callbacks = RecordingCallbacks()

    result = run_spec(spec, tmp_path, callbacks)

    report = result.report
    assert report["training"]["steps"] == 0 and report["training"]["teacher_cache"] is None
    assert callbacks.progress == [] and not any("teacher outputs" in line for line in callbacks.messages)
    for split in ("eval", "test"):
        assert report["student"][split] == report["teacher"][split]
    assert report["retention"]["accuracy"] == 1.0
    start = AutoModelForSequenceClassification.from_pretrained(engine_env.model_root / "bert-sentiment")
    saved = AutoModelForSequenceClassification.from_pretrained(result.student_dir)
    for name, weight in start.state_dict().items():
        assert torch.equal(weight, saved.state_dict()[name]), name


def test_an_evaluation_only_language_model_job_reports_its_perplexity_and_its_standard_error(
    run_spec, tmp_path
):
    spec = {
        "task": "causal_lm",
        "teacher": {"path": "gpt2-counting"},
        "student": {"init": "pretrained", "model": {"path": "gpt2-counting"}},
        "data": {"train_file": "file-counting", "max_length": 32},
        "method": {"type": "gkd"},
        "training": {"epochs": 0, "batch_size": 8},
        "report": {"generations": 1},
    }

    report = run_spec(spec, tmp_path).report

    student, teacher = report["student"], report["teacher"]
    assert student["eval"] == teacher["eval"] and student["stderr"] == teacher["stderr"]
    assert student["stderr"]["eval"]["perplexity"] > 0 and report["training"]["steps"] == 0
    assert report["language_model"]["student"] is not None
