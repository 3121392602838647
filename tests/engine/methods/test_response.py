"""Response distillation via `run_job`: classifier soft targets, token-level and sequence-level LM KD."""

import pytest
import torch
from engine_helpers import RecordingCallbacks, loss_fell, train_losses
from transformers import AutoConfig, AutoModelForSequenceClassification

from distillery.jobspec import ResponseMethod
from engine.methods.response import response_loss


def test_classifier_student_learns_from_the_teacher(run_spec, fast_training, tmp_path):
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {"init": "config", "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    losses = train_losses(tmp_path)
    assert loss_fell(losses)
    records = [line for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"train"' in line]
    assert '"kd"' in records[0] and '"ce"' in records[0]
    model = AutoModelForSequenceClassification.from_pretrained(result.student_dir)
    assert model.config.label2id == {"negative": 0, "positive": 1}


@pytest.mark.parametrize("divergence", ["forward_kl", "reverse_kl", "jsd"])
def test_causal_lm_token_level_kd_lowers_the_loss_with_each_divergence(
    run_spec, fast_training, tmp_path, divergence
):
    spec = {
        "task": "causal_lm",
        "teacher": {"path": "gpt2-counting"},
        "student": {"init": "config", "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-counting", "max_length": 32},
        "method": {
            "type": "response",
            "divergence": divergence,
            "jsd_beta": 0.3,
            "temperature": 1.5,
            "alpha": 0.7,
        },
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    # Better than guessing uniformly over the vocabulary.
    assert (
        result.report["student"]["eval"]["perplexity"]
        < AutoConfig.from_pretrained(result.student_dir).vocab_size
    )


def test_sequence_level_kd_trains_on_teacher_continuations(run_spec, fast_training, tmp_path):
    spec = {
        "task": "causal_lm",
        "teacher": {"path": "gpt2-counting"},
        "student": {"init": "config", "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-counting-prompts", "prompt_column": "prompt", "max_length": 32},
        "method": {"type": "response", "alpha": 0.5, "sequence_level": {"max_new_tokens": 6}},
        "training": {**fast_training, "epochs": 1},
    }
    callbacks = RecordingCallbacks()
    result = run_spec(spec, tmp_path, callbacks)

    assert result.status == "succeeded"
    added = [m for m in callbacks.messages if m.startswith("sequence-level KD: added")]
    assert added and int(added[0].split()[3]) > 0
    loaded = next(m for m in callbacks.messages if m.startswith("loaded data"))
    assert result.report["training"]["train_examples"] > int(loaded.split()[2])
    assert loss_fell(train_losses(tmp_path))


def test_masked_positions_do_not_change_the_token_level_loss():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 6, 11), torch.randn(2, 6, 11)
    labels = torch.randint(0, 11, (2, 6))
    labels[0, 4:] = -100
    spec = ResponseMethod(divergence="jsd", alpha=0.4)
    loss, _ = response_loss("causal_lm", spec, student, {"logits": teacher}, labels)
    # Logits at position 3 of row 0 predict label 4, which is masked: changing them changes nothing.
    student[0, 3:], teacher[0, 3:] = torch.randn(3, 11), torch.randn(3, 11)
    changed, _ = response_loss("causal_lm", spec, student, {"logits": teacher}, labels)
    assert torch.allclose(loss, changed)


def test_a_transfer_set_adds_teacher_labelled_rows_to_training(run_spec, fast_training, tmp_path):
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {"init": "teacher_layers", "layers": [0, 2]},
        "data": {"train_file": "file-sentiment", "transfer_file": "file-unlabeled", "max_length": 32},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    # 96 rows less the 10% eval split, plus the 64 unlabeled rows.
    assert result.report["training"]["train_examples"] == 86 + 64
    assert loss_fell(train_losses(tmp_path))


def test_causal_lm_kd_on_the_teachers_stored_top_k_lowers_the_loss(run_spec, fast_training, tmp_path):
    spec = {
        "task": "causal_lm",
        "teacher": {"path": "gpt2-counting"},
        "student": {"init": "config", "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-counting", "max_length": 32},
        "method": {"type": "response", "temperature": 1.5, "alpha": 0.7, "top_k": 4},
        "training": {**fast_training, "epochs": 3},
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    cache = result.report["training"]["teacher_cache"]
    assert cache["status"] == "miss"
    # At most 32 tokens an example, each with 4 log-probabilities (float16), 4 indices (int32) and the
    # tail (float16): far less than the teacher's full logits.
    assert cache["bytes"] < cache["examples"] * 32 * (4 * 6 + 2) + 8192
