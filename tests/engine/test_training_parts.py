"""Pieces of the training loop: weight decay groups, the schedule, metrics, checkpoints and RNG states."""

import copy
import random

import numpy as np
import pytest
import torch
from torch import nn

from distillery.jobspec import TrainingSpec
from engine.evaluation import classification_metrics, is_improvement, macro_f1
from engine.training.checkpointing import restore_rng_states, rng_states
from engine.training.optimization import build_optimizer, learning_rate_factor


def test_biases_and_layer_norms_get_no_weight_decay():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    optimizer = build_optimizer(model, TrainingSpec(weight_decay=0.1))
    decayed, not_decayed = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and [p.shape for p in decayed["params"]] == [(4, 4)]
    assert not_decayed["weight_decay"] == 0.0 and len(not_decayed["params"]) == 3


def test_schedule_warms_up_then_decays():
    def factors(kind):
        return [learning_rate_factor(s, warmup_steps=2, total_steps=10, kind=kind) for s in range(10)]

    linear = factors("linear")
    assert linear[0] < linear[1] < linear[2] == 1.0
    assert linear[2:] == sorted(linear[2:], reverse=True) and linear[-1] < 0.2
    assert factors("constant")[2:] == [1.0] * 8
    cosine = factors("cosine")
    assert cosine[2] == 1.0 and cosine[6] == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.5)))


def test_macro_f1_averages_per_class_f1():
    predictions, labels = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    # class 0: P=1/2 R=1/2 -> 0.5; class 1: P=1 R=2/3 -> 0.8; class 2: P=1/2 R=1 -> 2/3
    assert macro_f1(predictions, labels) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert classification_metrics(predictions, labels, loss_sum=3.0) == pytest.approx(
        {"accuracy": 4 / 6, "macro_f1": (0.5 + 0.8 + 2 / 3) / 3, "loss": 0.5}
    )


def test_best_metric_direction_depends_on_the_task():
    assert is_improvement("sequence_classification", 0.8, 0.7)
    assert not is_improvement("causal_lm", 2.5, 2.0)
    assert is_improvement("causal_lm", 1.5, None)


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    torch.save(rng_states(), tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    restore_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_adamw_is_fused_on_the_cpu():
    optimizer = build_optimizer(nn.Linear(4, 4), TrainingSpec())
    assert all(group["fused"] for group in optimizer.param_groups)


@pytest.mark.parametrize("foreach", [False, True], ids=["for-loop", "foreach"])
def test_fused_adamw_takes_the_same_steps_as_the_unfused_update(foreach):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 16), nn.Linear(16, 16), nn.LayerNorm(16), nn.Linear(16, 3))
    twin, start = copy.deepcopy(model), copy.deepcopy(model)
    training = TrainingSpec(learning_rate=1e-2, weight_decay=0.1)
    fused = build_optimizer(model, training)
    unfused = build_optimizer(twin, training)
    for group in unfused.param_groups:
        group["fused"], group["foreach"] = None, foreach
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        for param, twin_param in zip(model.parameters(), twin.parameters(), strict=True):
            param.grad = torch.randn(param.shape, generator=generator)
            twin_param.grad = param.grad.clone()
        fused.step()
        unfused.step()
    for param, twin_param, initial in zip(
        model.parameters(), twin.parameters(), start.parameters(), strict=True
    ):
        assert (param - initial).abs().max() > 0.01  # the steps moved every parameter
        torch.testing.assert_close(param, twin_param, rtol=1e-6, atol=1e-6)


def test_throughput_counts_examples_and_unpadded_tokens_per_second_of_training():
    from engine.training.loop import Throughput

    throughput = Throughput()
    padded = {
        "input_ids": torch.zeros(2, 4, dtype=torch.long),
        "attention_mask": torch.tensor([[1] * 4, [1, 1, 0, 0]]),
    }
    unmasked = {"input_ids": torch.zeros(1, 3, dtype=torch.long)}
    throughput.add([(padded, 1.0)], seconds=0.5)
    throughput.add([(unmasked, 1.0)], seconds=0.5)
    assert throughput.rates() == {"examples_per_second": 3.0, "tokens_per_second": 9.0}
    assert throughput.rates() == {"examples_per_second": 0.0, "tokens_per_second": 0.0}  # a new window
