"""Reductions that average only over the positions a boolean mask counts."""

import functools
from collections.abc import Callable
from typing import ParamSpec

import torch
from torch import Tensor

P = ParamSpec("P")


def check_mask(mask: Tensor | None, leading_shape: torch.Size, *, name: str = "mask") -> None:
    """Raise ValueError unless `mask` is None or a boolean tensor of `leading_shape`."""
    if mask is None:
        return
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor, got {mask.dtype}")
    if mask.shape != leading_shape:
        raise ValueError(f"{name} has shape {tuple(mask.shape)}, expected {tuple(leading_shape)}")


def masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of `values` over the positions where `mask` is True; 0 (graph intact) when none count."""
    if mask is None:
        return values.mean()
    # where() rather than a product, so a non-finite value at an uncounted position cannot leak in.
    kept = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return kept.sum() / mask.sum().clamp(min=1).to(values.dtype)


def zero_loss(like: Tensor) -> Tensor:
    """A scalar 0 that stays attached to `like`'s graph, so backward() still works."""
    return like.sum() * 0.0


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """At least float32: half-precision inputs are upcast, float64 inputs keep their precision."""
    return torch.promote_types(tensor.dtype, torch.float32)


def outside_autocast(loss: Callable[P, Tensor]) -> Callable[P, Tensor]:
    """Run a loss with autocast off, so its matmuls and softmaxes stay in the inputs' upcast precision."""

    @functools.wraps(loss)
    def run(*args: P.args, **kwargs: P.kwargs) -> Tensor:
        tensors = [value for value in (*args, *kwargs.values()) if isinstance(value, Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):
            return loss(*args, **kwargs)

    return run
