"""The student made parallel: DDP around the method's loss, or FSDP2 shards of the student.

DDP wraps a module whose forward is the method's `training_loss`, so every trainable part of the method
(the student, feature projections, exit heads, a mutual peer) has its gradients averaged; the teacher,
held outside the method's submodules, is never wrapped. FSDP2 (`fully_shard`) shards each transformer
block, then the student's root; the loop calls the method as in one process.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.nn.parallel import DistributedDataParallel

from engine.distributed.ranks import Ranks
from engine.methods.base import Method
from engine.models import find_layer_list

Parallelism = Literal["single", "ddp", "fsdp"]
LossFunction = Callable[[dict[str, Tensor]], tuple[Tensor, dict[str, float]]]

# Methods some of whose trainable parameters may sit out a step, which DDP must then look for after
# each forward (find_unused_parameters, a graph walk per step). None today: every method's loss reaches
# every trainable parameter on every batch (the projections, exit heads and peers included), which the
# distributed tests check (DDP raises at the next step otherwise). A method that stops doing so belongs here.
UNUSED_PARAMETER_METHODS: frozenset[str] = frozenset()


class TrainingForward(nn.Module):
    """The method's training loss as a module's forward, for DDP to wrap."""

    def __init__(self, method: Method) -> None:
        super().__init__()
        self.method = method

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """The loss of one batch and its named terms."""
        return self.method.training_loss(batch)


@dataclass
class ParallelMethod:
    """How the loop runs the method's loss, and how it keeps gradients local on accumulation steps."""

    method: Method
    parallelism: Parallelism
    loss: LossFunction
    ddp: DistributedDataParallel | None = None

    def gradient_sync(self, enabled: bool) -> AbstractContextManager[object]:
        """Keep this micro-batch's gradients local (`enabled=False`) until the group's last one."""
        if self.ddp is not None and not enabled:
            return self.ddp.no_sync()
        if self.parallelism == "fsdp":
            for module in self.method.modules():
                if isinstance(module, FSDPModule):
                    module.set_requires_gradient_sync(enabled, recurse=False)
        return nullcontext()


def make_parallel(method: Method, parallelism: Parallelism, ranks: Ranks) -> ParallelMethod:
    """The method, its student wrapped for `parallelism` (nothing to do for one process)."""
    if parallelism == "single" or not ranks.distributed:
        return ParallelMethod(method, "single", method.training_loss)
    if parallelism == "fsdp":
        shard_student(method.student)
        return ParallelMethod(method, "fsdp", method.training_loss)
    device_ids = [ranks.device.index] if ranks.device.type == "cuda" else None
    ddp = DistributedDataParallel(
        TrainingForward(method),
        device_ids=device_ids,
        find_unused_parameters=method.spec.type_name() in UNUSED_PARAMETER_METHODS,
        gradient_as_bucket_view=True,  # gradients live in the buckets: no copy in and out per step
    )
    return ParallelMethod(method, "ddp", ddp, ddp)


def shard_student(student: nn.Module) -> None:
    """fully_shard each transformer block, then the root, so a block's weights gather only in its turn."""
    blocks = student.get_submodule(find_layer_list(student))
    for block in blocks:
        fully_shard(block)
    fully_shard(student)
