"""Resumable checkpoints: weights, optimiser, scheduler, RNG states, data position and best-metric state.

A checkpoint is a directory `step-<n>/` holding `method.safetensors` (the method's state_dict: student,
projectors, exit heads, peers), `optimizer.pt` (optimiser, scheduler and RNG states, read back with
`weights_only=True`) and `trainer_state.json` (where the data stands and the best metric so far).

Over several processes rank 0 writes these files (DDP: every rank holds the same weights), except under
FSDP, where every rank writes its shards of the method and the optimiser with DCP into `dcp/` and
`optimizer.pt` keeps the scheduler and RNG states. Rank 0's RNG states are restored on every rank.
"""

import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from engine.distributed.ranks import SINGLE, Ranks
from engine.distributed.sharded_checkpoint import has_shards, load_shards, save_shards

logger = logging.getLogger(__name__)

PREFIX = "step-"


@dataclass
class TrainState:
    """Where training stands: enough, with the weights and optimiser, to continue exactly."""

    step: int = 0
    epoch: int = 0
    batch_index: int = 0
    batch_order: list[list[int]] | None = None
    best_metric: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    evals_without_improvement: int = 0


def rng_states() -> dict[str, Any]:
    """Python, NumPy, torch and CUDA generator states, in types `weights_only` loading accepts."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": (
            name,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            position,
            has_gauss,
            cached_gaussian,
        ),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Put every generator back where `rng_states()` found it."""
    random.setstate(_as_tuples(states["python"]))
    name, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_tuples(value: Any) -> Any:
    return tuple(_as_tuples(item) for item in value) if isinstance(value, list | tuple) else value


def save_checkpoint(
    directory: Path,
    *,
    method: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainState,
    ranks: Ranks = SINGLE,
    sharded: bool = False,
) -> Path:
    """Write `directory/step-<n>/` atomically, then keep only the latest and the best checkpoints.

    Every rank calls it; it returns once the checkpoint is complete on disk.
    """
    final = directory / f"{PREFIX}{state.step}"
    partial = directory / f".{PREFIX}{state.step}.partial"
    if ranks.is_main:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    ranks.barrier()
    if sharded:
        save_shards(partial, method=method, optimizer=optimizer)
    if ranks.is_main:
        training: dict[str, Any] = {"scheduler": scheduler.state_dict(), "rng": rng_states()}
        if not sharded:
            save_model(method, str(partial / "method.safetensors"))
            training["optimizer"] = optimizer.state_dict()
        torch.save(training, partial / "optimizer.pt")
        (partial / "trainer_state.json").write_text(json.dumps(asdict(state)))
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
        keep = {state.step, state.best_step}
        for old in list_checkpoints(directory):
            if checkpoint_step(old) not in keep:
                shutil.rmtree(old, ignore_errors=True)
    ranks.barrier()
    return final


def checkpoint_step(path: Path) -> int:
    """The optimiser step a checkpoint directory was written at."""
    return int(path.name.removeprefix(PREFIX))


def list_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not directory.is_dir():
        return []
    found = [
        p
        for p in directory.iterdir()
        if p.is_dir()
        and p.name.startswith(PREFIX)
        and p.name.removeprefix(PREFIX).isdigit()
        and (p / "trainer_state.json").is_file()
    ]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint, or None."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def load_method_weights(path: Path, method: nn.Module) -> None:
    """Load a checkpoint's weights into the method (e.g. the best one); reading DCP shards is a collective."""
    if has_shards(path):
        load_shards(path, method=method, optimizer=None)
        return
    load_model(method, str(path / "method.safetensors"), strict=True)


def load_checkpoint(
    path: Path,
    *,
    method: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> TrainState:
    """Restore everything a checkpoint holds and return the training state to continue from."""
    training = torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu")
    if has_shards(path):
        load_shards(path, method=method, optimizer=optimizer)
    else:
        load_method_weights(path, method)
        optimizer.load_state_dict(training["optimizer"])
    scheduler.load_state_dict(training["scheduler"])
    restore_rng_states(training["rng"])
    state = TrainState(**json.loads((path / "trainer_state.json").read_text()))
    logger.info("resumed from %s", path.name)
    return state
