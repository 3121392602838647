"""Incompatible specs fail before training with a UserError naming the spec field at fault."""

import pytest

from engine.errors import UserError


def classification_spec(**changes) -> dict:
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "response"},
        "training": {"epochs": 1, "batch_size": 16},
    }
    return {**spec, **changes}


def expect_user_error(run_spec, spec: dict, workdir, param: str) -> UserError:
    with pytest.raises(UserError) as caught:
        run_spec(spec, workdir)
    assert caught.value.param == param, caught.value.message
    return caught.value


def test_a_layer_index_past_the_teacher_depth_is_rejected(run_spec, tmp_path):
    spec = classification_spec(student={"init": "teacher_layers", "layers": [0, 7]})
    error = expect_user_error(run_spec, spec, tmp_path, "student.layers")
    assert "[7]" in error.message and "4 layers" in error.message


def test_data_labels_that_differ_from_the_teacher_labels_are_rejected(run_spec, tmp_path):
    spec = classification_spec(data={"train_file": "file-three-labels", "max_length": 32})
    error = expect_user_error(run_spec, spec, tmp_path, "teacher")
    assert "2 labels" in error.message and "3" in error.message


def test_a_student_with_another_vocabulary_is_rejected_for_logit_distillation(run_spec, tmp_path):
    spec = classification_spec(student={"init": "pretrained", "model": {"path": "bert-other-vocab"}})
    error = expect_user_error(run_spec, spec, tmp_path, "student.model")
    assert "tokenizer" in error.message


def test_a_classifier_teacher_for_a_language_model_task_is_rejected(run_spec, tmp_path):
    spec = classification_spec(task="causal_lm", data={"train_file": "file-counting"})
    expect_user_error(run_spec, spec, tmp_path, "teacher")


def test_a_missing_column_names_its_spec_field(run_spec, tmp_path):
    spec = classification_spec(data={"train_file": "file-sentiment", "text_column": "review"})
    error = expect_user_error(run_spec, spec, tmp_path, "data.text_column")
    assert "review" in error.message


def test_an_unknown_config_override_is_rejected(run_spec, tmp_path):
    spec = classification_spec(student={"init": "config", "config": {"num_hidden_layerz": 2}})
    expect_user_error(run_spec, spec, tmp_path, "student.config.num_hidden_layerz")


def test_a_config_only_the_base_model_refutes_is_a_user_error_naming_the_field(run_spec, tmp_path):
    # The teacher is 32 wide: 5 heads cannot split it, which the API, without the base config, cannot see.
    spec = classification_spec(student={"init": "config", "config": {"num_attention_heads": 5}})
    error = expect_user_error(run_spec, spec, tmp_path, "student.config.num_attention_heads")
    assert "attention heads" in error.message
