"""Feature distillation: layer map, projectors, masking, and training on both tasks."""

import pytest
import torch
from engine_helpers import loss_fell, train_losses
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from distillery.jobspec.methods import FeatureMethod
from engine.errors import UserError
from engine.methods.feature import FeatureDistillation, default_layer_map


def test_default_layer_map_spreads_student_layers_over_teacher_layers():
    assert default_layer_map(4, 2) == [(0, 0), (2, 1), (4, 2)]
    assert default_layer_map(6, 4) == [(0, 0), (2, 1), (3, 2), (5, 3), (6, 4)]  # 1.5 and 4.5 round up
    assert default_layer_map(3, 3) == [(0, 0), (1, 1), (2, 2), (3, 3)]


def test_method_uses_default_map_when_none_given(make_bert, context):
    method = FeatureDistillation(FeatureMethod(), context(make_bert(layers=2), make_bert(layers=4, seed=1)))
    assert method.layer_map == [(0, 0), (2, 1), (4, 2)]


def test_no_projector_when_widths_match(make_bert, context):
    student = make_bert(hidden=32)
    method = FeatureDistillation(FeatureMethod(), context(student, make_bert(hidden=32, seed=1)))
    assert method.projectors is None
    assert sum(p.numel() for p in method.parameters()) == sum(p.numel() for p in student.parameters())


def test_projector_per_pair_when_widths_differ_and_it_gets_gradients(make_bert, context, cls_batch):
    teacher = make_bert(hidden=48, heads=2, layers=4, seed=1)
    method = FeatureDistillation(FeatureMethod(), context(make_bert(hidden=32), teacher))
    assert method.projectors is not None and len(method.projectors) == len(method.layer_map) == 3
    assert method.projectors[0].in_features == 32 and method.projectors[0].out_features == 48
    assert any(name.startswith("projectors.") for name in method.state_dict())
    loss, terms = method.training_loss(cls_batch)
    loss.backward()
    for projector in method.projectors:
        assert projector.weight.grad is not None and projector.weight.grad.abs().sum() > 0
    assert terms["feature"] > 0


def test_out_of_range_layer_map_is_a_user_error(make_bert, context):
    spec = FeatureMethod(layer_map=[(0, 0), (5, 1)])
    with pytest.raises(UserError) as caught:
        FeatureDistillation(spec, context(make_bert(layers=2), make_bert(layers=4, seed=1)))
    assert caught.value.param == "method.layer_map"
    spec = FeatureMethod(layer_map=[(1, 3)])
    with pytest.raises(UserError) as caught:
        FeatureDistillation(spec, context(make_bert(layers=2), make_bert(layers=4, seed=1)))
    assert caught.value.param == "method.layer_map"


def test_padding_positions_do_not_change_the_feature_loss(make_bert, context, cls_batch):
    method = FeatureDistillation(FeatureMethod(), context(make_bert(), make_bert(hidden=48, seed=1)))
    student_states = tuple(torch.randn(8, 10, 32) for _ in range(3))
    teacher_states = tuple(torch.randn(8, 10, 48) for _ in range(3))
    mask = cls_batch["attention_mask"]
    assert (mask == 0).any()
    as_targets = lambda states: {f"hidden_{t}": states[t] for t, _ in method.layer_map}  # noqa: E731
    before = method.feature_loss(student_states, as_targets(teacher_states), mask)
    padding = (mask == 0)[:, :, None]
    noisy_student = tuple(s + 100.0 * padding * torch.randn_like(s) for s in student_states)
    noisy_teacher = tuple(t - 100.0 * padding * torch.randn_like(t) for t in teacher_states)
    after = method.feature_loss(noisy_student, as_targets(noisy_teacher), mask)
    torch.testing.assert_close(before, after)


def test_feature_distillation_trains_a_classifier(make_bert, context, cls_batch, train):
    method = FeatureDistillation(
        FeatureMethod(loss="cosine"), context(make_bert(), make_bert(layers=4, seed=1))
    )
    losses = train(method, cls_batch, steps=8)
    assert losses[-1] < losses[0]


def test_feature_distillation_trains_a_causal_lm_with_projectors(make_gpt2, context, lm_batch, train):
    teacher = make_gpt2(hidden=48, layers=4, seed=1)
    method = FeatureDistillation(FeatureMethod(), context(make_gpt2(), teacher, task="causal_lm"))
    assert method.layer_map == [(0, 0), (2, 1), (4, 2)]
    losses = train(method, lm_batch, steps=8)
    assert losses[-1] < losses[0]


def test_feature_job_trains_a_narrower_classifier_that_loads(run_spec, fast_training, tmp_path):
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {
            "init": "config",
            "config": {"num_hidden_layers": 2, "hidden_size": 16, "intermediate_size": 32},
        },
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "feature", "feature_weight": 1.0},
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    model = AutoModelForSequenceClassification.from_pretrained(result.student_dir)
    assert model.config.hidden_size == 16 and model.config.num_hidden_layers == 2
    # The projectors are training aids, not part of the saved student.
    assert not any("projector" in name for name in model.state_dict())


def test_feature_job_trains_a_causal_lm(run_spec, fast_training, tmp_path):
    spec = {
        "task": "causal_lm",
        "teacher": {"path": "gpt2-counting"},
        "student": {"init": "config", "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-counting", "max_length": 32},
        "method": {"type": "feature", "layer_map": [[0, 0], [2, 1], [4, 2]], "loss": "cosine"},
        "training": fast_training,
    }
    result = run_spec(spec, tmp_path)

    assert result.status == "succeeded"
    assert loss_fell(train_losses(tmp_path))
    assert AutoModelForCausalLM.from_pretrained(result.student_dir).config.num_hidden_layers == 2


def test_feature_job_with_a_bad_layer_index_fails_naming_the_field(run_spec, fast_training, tmp_path):
    spec = {
        "teacher": {"path": "bert-sentiment"},
        "student": {"init": "config", "config": {"num_hidden_layers": 2}},
        "data": {"train_file": "file-sentiment", "max_length": 32},
        "method": {"type": "feature", "layer_map": [[9, 1]]},
        "training": fast_training,
    }
    with pytest.raises(UserError) as caught:
        run_spec(spec, tmp_path)
    assert caught.value.param == "method.layer_map"
