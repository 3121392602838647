"""DDP or FSDP for a job: what the spec asks, and for `auto` whether the models fit one device."""

import torch
from torch import nn

from distillery.jobspec import FSDP_METHODS, JobSpec
from engine.distributed.ranks import Ranks
from engine.distributed.wrap import Parallelism

# The share of a device's memory the weights, gradients and optimiser state may take before `auto`
# shards them: activations, the CUDA context and the allocator's slack need the rest.
FITS_SHARE = 0.6


def training_bytes(student: nn.Module, teacher: nn.Module | None) -> int:
    """Bytes one device holds to train unsharded: the student's weights, gradients and two Adam moments
    (for its trainable parameters), its frozen weights, and the teacher's weights."""
    total = 0
    for param in student.parameters():
        size = param.numel() * param.element_size()
        total += 4 * size if param.requires_grad else size
    if teacher is not None:
        total += sum(param.numel() * param.element_size() for param in teacher.parameters())
    return total


def choose_parallelism(
    spec: JobSpec, student: nn.Module, teacher: nn.Module | None, device: torch.device, ranks: Ranks
) -> tuple[Parallelism, str]:
    """The parallelism this run trains with, and why, for the log and the report."""
    if not ranks.distributed:
        return "single", "one device"
    asked, method = spec.training.parallelism, spec.method.type
    if spec.student.lora is not None and asked != "ddp":
        return "ddp", "a LoRA student trains few parameters: every device holds the whole model (DDP)"
    if asked != "auto":
        return asked, f"training.parallelism is {asked}"
    if device.type != "cuda" or method not in FSDP_METHODS:
        return "ddp", "auto: every device holds the whole student (DDP)"
    needed = training_bytes(student, teacher)
    memory = torch.cuda.get_device_properties(device).total_memory
    if needed > FITS_SHARE * memory:
        reason = f"auto: training takes ~{needed / 1e9:.1f} GB, over {FITS_SHARE:.0%} of one device's memory"
        return "fsdp", reason
    return "ddp", f"auto: training takes ~{needed / 1e9:.1f} GB, which fits one device (DDP)"
