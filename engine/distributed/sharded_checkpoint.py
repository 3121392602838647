"""FSDP checkpoints with torch.distributed.checkpoint (DCP): every rank writes and reads its own shards.

The method's and the optimiser's state dicts come from `get_state_dict` (sharded DTensors under FSDP,
plain tensors otherwise), so DCP reshards on load: a checkpoint written by N ranks resumes on M ranks or
in one process. The student saved for `from_pretrained` is the full state dict gathered to rank 0.
"""

from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_state_dict,
)

SHARDS = "dcp"


def has_shards(checkpoint: Path) -> bool:
    """Whether a checkpoint directory holds DCP shards (written under FSDP)."""
    return (checkpoint / SHARDS).is_dir()


def save_shards(checkpoint: Path, *, method: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Every rank writes its shards of the method and the optimiser under `checkpoint/dcp/` (a collective)."""
    model_state, optimizer_state = get_state_dict(method, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(checkpoint / SHARDS))


def load_shards(checkpoint: Path, *, method: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
    """Read the method's (and the optimiser's) state from DCP shards, resharded to this group's layout."""
    if optimizer is None:
        model_state = get_model_state_dict(method)
        state: dict[str, Any] = {"model": model_state}
        dcp.load(state, checkpoint_id=str(checkpoint / SHARDS))
        set_model_state_dict(method, state["model"])
        return
    model_state, optimizer_state = get_state_dict(method, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=str(checkpoint / SHARDS))
    set_state_dict(method, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def full_state_on_main(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's whole state dict on rank 0's CPU (a collective; the other ranks get an empty dict)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)
