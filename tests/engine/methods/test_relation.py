"""Relation distillation: RKD on pooled representations of models of different widths."""

import torch
from engine_helpers import loss_fell, train_losses
from transformers import AutoModelForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

from distillery.jobspec.methods import RelationMethod
from engine.methods.base import model_inputs
from engine.methods.relation import RelationDistillation, forward_with_representation


def test_representation_is_the_pooler_output_where_the_model_has_one(make_bert, cls_batch):
    model = make_bert().eval()
    with torch.no_grad():
        logits, pooled = forward_with_representation(model, model_inputs(cls_batch))
        outputs = model(**model_inputs(cls_batch), output_hidden_states=True)
        expected = model.bert.pooler(outputs.hidden_states[-1])
    torch.testing.assert_close(pooled, expected)
    torch.testing.assert_close(logits, outputs.logits)
    assert not model.bert.pooler._forward_hooks


def test_representation_is_the_first_token_state_without_a_pooler(cls_batch):
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=40,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=40,
        num_labels=3,
    )
    model = RobertaForSequenceClassification(config).eval()
    inputs = {key: cls_batch[key] for key in ("input_ids", "attention_mask")}
    with torch.no_grad():
        _, pooled = forward_with_representation(model, inputs)
        expected = model(**inputs, output_hidden_states=True).hidden_states[-1][:, 0]
    torch.testing.assert_close(pooled, expected)


def test_relation_distillation_trains_across_widths(make_bert, context, cls_batch, train):
    student, teacher = make_bert(hidden=32), make_bert(hidden=64, heads=4, layers=3, seed=1)
    method = RelationDistillation(RelationMethod(), context(student, teacher))
    loss, terms = method.training_loss(cls_batch)
    assert terms["rkd_distance"] > 0 and terms["rkd_angle"] > 0
    loss.backward()
    assert student.bert.pooler.dense.weight.grad.abs().sum() > 0
    losses = train(method, cls_batch, steps=8, lr=5e-3)
    assert losses[-1] < losses[0]


def test_relation_terms_are_weighted_into_the_loss(make_bert, context, cls_batch):
    student, teacher = make_bert(), make_bert(hidden=64, heads=4, seed=1)
    spec = RelationMethod(distance_weight=3.0, angle_weight=7.0, alpha=0.25)
    _, terms = RelationDistillation(spec, context(student, teacher)).training_loss(cls_batch)
    expected = (
        0.25 * terms["kd"] + 0.75 * terms["ce"] + 3.0 * terms["rkd_distance"] + 7.0 * terms["rkd_angle"]
    )
    assert abs(terms["loss"] - expected) < 1e-4


def test_relation_job_trains_a_narrower_student_that_loads(run_spec, fast_training, tmp_path):
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {
            "init": "config",
            "config": {"num_hidden_layers": 2, "hidden_size": 16, "intermediate_size": 32},
        },
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "relation", "distance_weight": 25.0, "angle_weight": 50.0},
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    assert AutoModelForSequenceClassification.from_pretrained(result.student_dir).config.hidden_size == 16
