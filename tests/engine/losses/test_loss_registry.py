"""The registry that names every public loss, which the tests that go over all losses use."""

import torch

from engine import losses


def test_registry_names_every_public_loss():
    assert {
        "soft_target": losses.soft_target_loss,
        "topk_soft_target": losses.topk_soft_target_loss,
        "hard_target": losses.hard_target_loss,
        "hidden_state": losses.hidden_state_loss,
        "attention_map": losses.attention_map_loss,
        "self_attention_relation": losses.self_attention_relation_loss,
        "rkd_distance": losses.rkd_distance_loss,
        "rkd_angle": losses.rkd_angle_loss,
        "uld": losses.uld_loss,
    } == losses.LOSSES


def test_a_registered_loss_is_callable_by_name():
    logits = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    loss = losses.LOSSES["soft_target"](logits, logits, temperature=2.0)
    assert loss.item() == 0.0
