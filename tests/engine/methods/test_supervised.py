"""Supervised training via `run_job`: no teacher needed, the loss falls, the student loads and predicts."""

import pytest
import torch
from engine_helpers import RecordingCallbacks, loss_fell, train_losses
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer


def test_supervised_classifier_learns_and_is_compared_with_a_named_teacher(run_spec, fast_training, tmp_path):
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {"init": "config", "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "supervised"},
        "training": fast_training,
    }
    callbacks = RecordingCallbacks()
    result = run_spec(spec, tmp_path, callbacks)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    model = AutoModelForSequenceClassification.from_pretrained(result.student_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.student_dir)
    assert model.config.num_hidden_layers == 2
    assert model.config.id2label == {0: "negative", 1: "positive"}
    with torch.no_grad():
        logits = model(
            **tokenizer(["the movie was good", "an awful plot"], padding=True, return_tensors="pt")
        ).logits
    assert logits.shape == (2, 2)
    # Supervised training never loads the teacher to train; it is evaluated afterwards for the report.
    assert not any(m.startswith("loaded teacher") for m in callbacks.messages)
    assert result.report["teacher"]["eval"]["accuracy"] >= 0
    assert set(result.report["retention"]) == {"accuracy", "macro_f1"}


def test_supervised_causal_lm_learns_and_reports_no_teacher(run_spec, fast_training, tmp_path):
    spec = {
        "task": "causal_lm",
        "student": {"init": "config", "model": {"path": "gpt2-counting"}, "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-counting", "max_length": 32},
        "method": {"type": "supervised"},
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    assert all(value is None for value in result.report["teacher"].values())
    assert result.report["retention"] is None and result.report["latency"]["speedup"] is None
    student = result.report["student"]
    assert student["eval"]["perplexity"] > 1 and student["latency_ms"] > 0
    errors = student["stderr"]["eval"]
    assert errors["loss"] > 0 and errors["perplexity"] == pytest.approx(
        student["eval"]["perplexity"] * errors["loss"]
    )
    assert student["examples"] == {"eval": result.report["training"]["eval_examples"]}
    model = AutoModelForCausalLM.from_pretrained(result.student_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.student_dir)
    prompt = tokenizer("three four five", return_tensors="pt")
    generated = model.generate(
        **prompt, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.eos_token_id
    )
    assert generated.shape[1] <= prompt["input_ids"].shape[1] + 3
