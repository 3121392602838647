"""Distillation losses: pure PyTorch functions, each documented with its formula and paper."""

from engine.losses.attention import attention_map_loss, self_attention_relation_loss
from engine.losses.divergence import (
    hard_target_loss,
    soft_target_loss,
    topk_soft_target_loss,
    topk_teacher_targets,
)
from engine.losses.feature import hidden_state_loss
from engine.losses.relation import rkd_angle_loss, rkd_distance_loss
from engine.losses.uld import uld_loss

__all__ = [
    "attention_map_loss",
    "hard_target_loss",
    "hidden_state_loss",
    "rkd_angle_loss",
    "rkd_distance_loss",
    "self_attention_relation_loss",
    "soft_target_loss",
    "topk_soft_target_loss",
    "topk_teacher_targets",
    "uld_loss",
]
