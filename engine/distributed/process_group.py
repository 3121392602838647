"""The process group of a torchrun launch: found in the environment, started and always destroyed.

`torch.distributed.run` starts one process per device and sets WORLD_SIZE, RANK, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT in each. WORLD_SIZE unset or 1 means one process and no group at all.

On errors: a rank that raises destroys its group on the way out and its process ends; with gloo the
other ranks' pending collectives then fail at once (the peer closed its connection), and torchrun stops
the remaining workers when one exits with an error. Both rely on the launcher ending a failed rank's
process; the group's timeout (`GROUP_TIMEOUT`) bounds the wait if it does not.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from engine.distributed.ranks import SINGLE, Ranks

logger = logging.getLogger(__name__)

# Long enough for the slowest collective the engine waits in (the teacher-cache pass, a checkpoint).
GROUP_TIMEOUT = timedelta(minutes=60)


@dataclass(frozen=True)
class Launch:
    """What torchrun told this process: its rank, its rank on this machine, and how many there are."""

    rank: int
    local_rank: int
    world_size: int


def launch_from_environment() -> Launch | None:
    """The torchrun launch this process belongs to, or None for a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world_size <= 1:
        return None
    return Launch(
        rank=int(os.environ["RANK"]),
        local_rank=int(os.environ.get("LOCAL_RANK", os.environ["RANK"])),
        world_size=world_size,
    )


def launch_device(launch: Launch, requested: str | None) -> torch.device:
    """The device of this rank: the requested one, else CUDA device LOCAL_RANK when there is CUDA."""
    if requested is not None:
        device = torch.device(requested)
    elif torch.cuda.is_available():
        device = torch.device("cuda", launch.local_rank)
    else:
        device = torch.device("cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", launch.local_rank)
    return device


@contextmanager
def process_group(requested_device: str | None) -> Iterator[tuple[Ranks, torch.device]]:
    """This process's ranks and device; under torchrun the group is started here and destroyed after.

    A group the launcher already started (Ray Train starts it in each of its workers) is used as it is,
    and left to the launcher to destroy.
    """
    launch = launch_from_environment()
    if launch is None:
        yield SINGLE, torch.device(requested_device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return
    device = launch_device(launch, requested_device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if dist.is_initialized():
        ranks = Ranks(dist.get_rank(), dist.get_world_size(), launch.local_rank, device)
        logger.info("rank %d of %d on %s (the launcher's group)", ranks.rank, ranks.world_size, device)
        yield ranks, device
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend=backend,
        rank=launch.rank,
        world_size=launch.world_size,
        timeout=GROUP_TIMEOUT,
        device_id=device if device.type == "cuda" else None,
    )
    ranks = Ranks(launch.rank, launch.world_size, launch.local_rank, device)
    logger.info("rank %d of %d on %s (%s)", launch.rank, launch.world_size, device, backend)
    try:
        yield ranks, device
    finally:
        dist.destroy_process_group()
