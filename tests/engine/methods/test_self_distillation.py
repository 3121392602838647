"""Self-distillation: exits at intermediate depths, and a student truncated at one of them."""

import pytest
import torch
from engine_helpers import loss_fell, train_losses
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distillery.jobspec.methods import SelfMethod
from engine.errors import UserError
from engine.methods.base import model_inputs
from engine.methods.self_distillation import SelfDistillation, default_exits


def test_self_distillation_needs_no_teacher():
    assert SelfDistillation.needs_teacher is False


def test_default_exits_are_every_other_layer_below_the_last():
    assert default_exits(6) == [2, 4]
    assert default_exits(5) == [1, 3]
    assert default_exits(4) == [2]
    assert default_exits(2) == [1]


def test_exit_heads_start_as_copies_of_the_final_head(make_bert, context):
    student = make_bert(layers=4)
    method = SelfDistillation(SelfMethod(), context(student))
    assert method.exits == [2]
    head = method.exit_heads["2"]
    torch.testing.assert_close(head.classifier.weight, student.classifier.weight)
    torch.testing.assert_close(head.pooler.dense.weight, student.bert.pooler.dense.weight)
    assert head.classifier.weight.data_ptr() != student.classifier.weight.data_ptr()


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        (SelfMethod(exits=[2, 5]), "method.exits"),
        (SelfMethod(exits=[4]), "method.exits"),
        (SelfMethod(exits=[1, 2], keep_exit=3), "method.keep_exit"),
    ],
)
def test_invalid_exits_are_user_errors(make_bert, context, spec, param):
    with pytest.raises(UserError) as caught:
        SelfDistillation(spec, context(make_bert(layers=4)))
    assert caught.value.param == param


def test_exits_learn_and_the_deepest_teaches(make_bert, context, cls_batch, train):
    method = SelfDistillation(SelfMethod(exits=[1, 2, 3], feature_weight=0.5), context(make_bert(layers=4)))
    loss, terms = method.training_loss(cls_batch)
    assert {"ce", "ce_exits", "kd", "feature"} <= terms.keys()
    assert {f"accuracy_depth_{depth}" for depth in (1, 2, 3, 4)} <= terms.keys()
    loss.backward()
    for head in method.exit_heads.values():
        assert head.classifier.weight.grad.abs().sum() > 0
    losses = train(method, cls_batch, steps=8)
    assert losses[-1] < losses[0]


def test_export_without_keep_exit_is_the_full_student(make_bert, context):
    student = make_bert(layers=4)
    assert SelfDistillation(SelfMethod(), context(student)).export_model() is student


def test_keep_exit_exports_a_smaller_model_with_the_exits_logits(
    make_bert, context, cls_batch, train, tmp_path
):
    student = make_bert(layers=4)
    method = SelfDistillation(SelfMethod(exits=[1, 2], keep_exit=2), context(student))
    train(method, cls_batch, steps=3)
    method.eval()
    with torch.no_grad():
        exit_logits, _ = method.exit_logits(cls_batch)
    exported = method.export_model()
    assert exported.config.num_hidden_layers == 2 and len(exported.bert.encoder.layer) == 2
    assert student.config.num_hidden_layers == 4 and len(student.bert.encoder.layer) == 4
    exported.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == 2
    with torch.no_grad():
        reloaded_logits = reloaded(**model_inputs(cls_batch)).logits
    torch.testing.assert_close(reloaded_logits, exit_logits[2], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(reloaded_logits, exit_logits[4])


def test_self_distillation_job_saves_the_student_cut_at_keep_exit(run_spec, fast_training, tmp_path):
    spec = {
        "student": {"init": "pretrained", "model": {"path": "bert-sentiment"}},
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "self", "exits": [1, 2, 3], "keep_exit": 2, "feature_weight": 0.1},
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    model = AutoModelForSequenceClassification.from_pretrained(result.student_dir).eval()
    assert model.config.num_hidden_layers == 2 and len(model.bert.encoder.layer) == 2
    tokenizer = AutoTokenizer.from_pretrained(result.student_dir)
    with torch.no_grad():
        logits = model(
            **tokenizer(["a good movie", "an awful plot"], padding=True, return_tensors="pt")
        ).logits
    assert logits.shape == (2, 2)
    assert result.report["student"]["eval"]["accuracy"] >= 0


def test_self_distillation_job_with_keep_exit_not_an_exit_fails(run_spec, fast_training, tmp_path):
    spec = {
        "student": {"init": "pretrained", "model": {"path": "bert-sentiment"}},
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "self", "exits": [2], "keep_exit": 3},
        "training": fast_training,
    }
    with pytest.raises(UserError) as caught:
        run_spec(spec, tmp_path)
    assert caught.value.param == "method.keep_exit"
