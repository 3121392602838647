"""Distillation losses: pure PyTorch functions, each documented with its formula and paper."""

from collections.abc import Callable

from worker.engine.losses.divergence import hard_target_loss, soft_target_loss

LOSSES: dict[str, Callable[..., object]] = {
    "soft_target": soft_target_loss,
    "hard_target": hard_target_loss,
}

__all__ = ["LOSSES", "hard_target_loss", "soft_target_loss"]
