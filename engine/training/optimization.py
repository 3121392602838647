"""Optimiser, learning-rate schedule and seeding for the training loop."""

import math
import random
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.distributed.tensor import DTensor

from distillery.jobspec import TrainingSpec

# Devices with a fused AdamW kernel (the CPU's since torch 2.4). It updates a parameter and both moments
# in one pass, several times faster than the default update (docs/benchmarks.md, "Speed levers").
FUSED_ADAMW_DEVICES = {"cpu", "cuda"}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or "Norm" in type(module).__name__


def build_optimizer(method: nn.Module, training: TrainingSpec) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; biases and normalisation weights get no weight decay."""
    no_decay = {
        id(param)
        for module in method.modules()
        for name, param in module.named_parameters(recurse=False)
        if name.endswith("bias") or _is_norm(module)
    }
    trainable = [param for param in method.parameters() if param.requires_grad]
    groups = [
        {"params": [p for p in trainable if id(p) not in no_decay], "weight_decay": training.weight_decay},
        {"params": [p for p in trainable if id(p) in no_decay], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [group for group in groups if group["params"]],
        lr=training.learning_rate,
        fused=can_fuse_adamw(trainable) or None,
    )


def can_fuse_adamw(params: list[nn.Parameter]) -> bool:
    """Whether every parameter is floating point on a device with a fused AdamW kernel (not FSDP shards)."""
    return bool(params) and all(
        param.is_floating_point()
        and param.device.type in FUSED_ADAMW_DEVICES
        and not isinstance(param, DTensor)
        for param in params
    )


def learning_rate_factor(step: int, *, warmup_steps: int, total_steps: int, kind: str) -> float:
    """Multiplier of the peak learning rate: linear warmup, then linear, cosine or constant."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


def build_scheduler(
    optimizer: torch.optim.Optimizer, training: TrainingSpec, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warmup over `warmup_ratio` of the steps, then the chosen decay."""
    warmup_steps = math.ceil(training.warmup_ratio * total_steps)
    factor = partial(
        learning_rate_factor, warmup_steps=warmup_steps, total_steps=total_steps, kind=training.lr_scheduler
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step))
