"""What a job asks of the hardware, how it spreads over devices, and its place in the queue."""

from typing import Literal

from pydantic import Field

from distillery.jobspec.methods import StrictModel

Accelerator = Literal["auto", "cpu", "cuda"]
Parallelism = Literal["auto", "ddp", "fsdp"]
Priority = Literal["low", "normal", "high"]
# Methods whose student (and teacher) can be sharded with FSDP: those that read only the models' outputs.
# The others hook intermediate layers, add exits or train two students, which a shard does not hold whole.
FSDP_METHODS = frozenset({"supervised", "response", "gkd"})
MAX_DEVICES = 64
MAX_NODES = 64


class ResourcesSpec(StrictModel):
    """The devices one job runs on; a job waits until a worker that has them is free."""

    accelerator: Accelerator = Field(
        "auto",
        description="cuda: NVIDIA GPUs only; cpu: CPU processes only; auto: whichever a free worker has.",
    )
    devices: int = Field(
        1,
        ge=1,
        le=MAX_DEVICES,
        description="Devices of one worker machine the job uses at once: GPUs, or on the CPU, processes. "
        "More than one runs the job as one torchrun process group (DDP or FSDP, see "
        "training.parallelism); training.batch_size stays the global batch, split evenly across them.",
    )
    nodes: int = Field(
        1,
        ge=1,
        le=MAX_NODES,
        description="Machines the job spans, each with `devices` devices: more than one needs a service "
        "whose workers hand jobs to a Ray cluster (DISTILLERY_EXECUTOR=ray). training.batch_size stays the "
        "global batch, split evenly across all nodes x devices processes.",
    )
    min_memory_gb: float | None = Field(
        None, gt=0, description="Memory each device must have, in GB (GPU memory, or host memory on the CPU)."
    )
