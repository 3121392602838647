"""Attention distillation: TinyBERT maps (same heads) and MiniLM relations (any heads and widths)."""

import pytest
from engine_helpers import loss_fell, train_losses
from transformers import AutoModelForSequenceClassification

from distillery.jobspec.methods import AttentionMethod
from engine.errors import UserError
from engine.methods.attention import (
    AttentionDistillation,
    default_attention_layer_map,
    default_relation_heads,
    last_layer_projections,
)


def test_attention_method_asks_for_eager_attention():
    assert AttentionDistillation.needs_eager_attention is True
    assert AttentionDistillation.needs_teacher is True


def test_default_tinybert_map_ends_with_last_layers():
    assert default_attention_layer_map(4, 2) == [(1, 0), (3, 1)]
    assert default_attention_layer_map(6, 3) == [(1, 0), (3, 1), (5, 2)]
    assert default_attention_layer_map(2, 2) == [(0, 0), (1, 1)]


def test_tinybert_with_different_head_counts_is_a_user_error_pointing_to_minilm(make_bert, context):
    student, teacher = make_bert(heads=2, eager=True), make_bert(heads=4, eager=True, seed=1)
    with pytest.raises(UserError) as caught:
        AttentionDistillation(AttentionMethod(style="tinybert"), context(student, teacher))
    assert caught.value.param == "method.style"
    assert "minilm" in caught.value.message


def test_tinybert_out_of_range_layer_is_a_user_error(make_bert, context):
    spec = AttentionMethod(style="tinybert", layer_map=[(4, 0)])
    with pytest.raises(UserError) as caught:
        AttentionDistillation(spec, context(make_bert(eager=True), make_bert(layers=4, eager=True, seed=1)))
    assert caught.value.param == "method.layer_map"


def test_tinybert_trains_on_attention_maps(make_bert, context, cls_batch, train):
    student, teacher = make_bert(eager=True), make_bert(layers=4, hidden=48, eager=True, seed=1)
    method = AttentionDistillation(AttentionMethod(style="tinybert"), context(student, teacher))
    assert method.layer_map == [(1, 0), (3, 1)]
    _, terms = method.training_loss(cls_batch)
    assert terms["attention"] > 0
    losses = train(method, cls_batch, steps=8)
    assert losses[-1] < losses[0]


def test_minilm_works_with_different_heads_and_widths(make_bert, context, cls_batch, train):
    student = make_bert(hidden=32, heads=2, eager=True)
    teacher = make_bert(hidden=48, heads=4, layers=3, eager=True, seed=1)
    method = AttentionDistillation(AttentionMethod(style="minilm"), context(student, teacher))
    # The default is the most heads, up to the teacher's 4, that split both widths (32 and 48).
    assert method.relation_heads == 4
    loss, terms = method.training_loss(cls_batch)
    assert {"relation_query", "relation_key", "relation_value"} <= terms.keys()
    assert terms["attention"] == pytest.approx(
        terms["relation_query"] + terms["relation_key"] + terms["relation_value"], rel=1e-5
    )
    loss.backward()
    last_projections = last_layer_projections(student)
    assert last_projections is not None
    for projection in last_projections.values():
        assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0
    losses = train(method, cls_batch, steps=8)
    assert losses[-1] < losses[0]


def test_minilm_leaves_no_hooks_behind(make_bert, context, cls_batch):
    student, teacher = make_bert(eager=True), make_bert(hidden=48, heads=4, eager=True, seed=1)
    method = AttentionDistillation(AttentionMethod(relation_heads=4), context(student, teacher))
    method.training_loss(cls_batch)
    for model in (student, teacher):
        projections = last_layer_projections(model)
        assert projections is not None
        assert all(not projection._forward_hooks for projection in projections.values())


def test_minilm_default_relation_heads_divide_widths_the_head_counts_do_not():
    assert default_relation_heads([32, 24], [2, 3]) == 2
    assert default_relation_heads([384, 384], [12, 12]) == 12
    assert default_relation_heads([30, 21], [5, 7]) == 3


def test_minilm_relation_heads_must_divide_both_widths(make_bert, context):
    student, teacher = make_bert(hidden=32, eager=True), make_bert(hidden=48, heads=4, eager=True, seed=1)
    with pytest.raises(UserError) as caught:
        AttentionDistillation(AttentionMethod(relation_heads=5), context(student, teacher))
    assert caught.value.param == "method.relation_heads"


def test_minilm_without_query_key_value_projections_is_a_user_error(make_bert, make_gpt2, context):
    # GPT-2 fuses its projections into one c_attn layer: there is no separate query to hook.
    with pytest.raises(UserError) as caught:
        AttentionDistillation(AttentionMethod(style="minilm"), context(make_gpt2(), make_bert(eager=True)))
    assert caught.value.param == "method.style"
    assert "student" in caught.value.message


def test_minilm_job_distils_into_a_student_with_other_heads_and_width(run_spec, fast_training, tmp_path):
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {
            "init": "config",
            "config": {
                "num_hidden_layers": 2,
                "hidden_size": 24,
                "num_attention_heads": 3,
                "intermediate_size": 48,
            },
        },
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "attention", "style": "minilm"},
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    model = AutoModelForSequenceClassification.from_pretrained(result.student_dir)
    assert model.config.num_attention_heads == 3 and model.config.hidden_size == 24


def test_tinybert_job_trains_on_mapped_attention_maps(run_spec, fast_training, tmp_path):
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {"init": "teacher_layers", "layers": [1, 3]},
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "attention", "style": "tinybert", "layer_map": [[1, 0], [3, 1]]},
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    assert (
        AutoModelForSequenceClassification.from_pretrained(result.student_dir).config.num_hidden_layers == 2
    )


def test_tinybert_job_with_other_head_counts_fails_naming_the_style(run_spec, fast_training, tmp_path):
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {"init": "config", "config": {"num_hidden_layers": 2, "num_attention_heads": 4}},
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "attention", "style": "tinybert"},
        "training": fast_training,
    }
    with pytest.raises(UserError) as caught:
        run_spec(spec, tmp_path)
    assert caught.value.param == "method.style" and "minilm" in caught.value.message
