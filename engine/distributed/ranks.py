"""Where this process stands in its group, and the few collectives the engine uses.

A single-process run uses `SINGLE`, whose collectives return their input, so the training loop reads
the same on one device or many. Every collective must be called by every rank at the same point: the
engine calls them only on paths that every rank takes, never on an error path (a rank that raises leaves
the group; see `engine.distributed.process_group`).
"""

from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's rank among `world_size`, and the device its collectives' tensors live on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        """Whether other processes train the same job."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that reports, writes the job's files and evaluates at the end."""
        return self.rank == 0

    def broadcast_flag(self, value: bool) -> bool:
        """Rank 0's answer, on every rank."""
        if not self.distributed:
            return value
        flag = torch.tensor([1 if value else 0], device=self.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def broadcast_object(self, value: T) -> T:
        """Rank 0's (picklable) value, on every rank."""
        if not self.distributed:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over the ranks (in float64, so the order of the sum barely matters)."""
        if not self.distributed or not values:
            return values
        totals = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(totals, op=dist.ReduceOp.SUM)
        return totals.tolist()

    def maximum(self, value: float) -> float:
        """The largest value over the ranks."""
        if not self.distributed:
            return value
        largest = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(largest, op=dist.ReduceOp.MAX)
        return float(largest.item())

    def gather(self, items: list[Any]) -> list[Any]:
        """Every rank's items, rank 0's first, on every rank."""
        if not self.distributed:
            return items
        gathered: list[list[Any] | None] = [None] * self.world_size
        dist.all_gather_object(gathered, items)
        return [item for part in gathered for item in part or []]

    def gather_to_main(self, items: list[Any]) -> list[list[Any]]:
        """Every rank's items, by rank, on rank 0; an empty list on the others."""
        if not self.distributed:
            return [items]
        gathered: list[list[Any] | None] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(items, gathered, dst=0)
        return [part or [] for part in gathered] if gathered is not None else []

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.distributed:
            dist.barrier()


SINGLE = Ranks()
