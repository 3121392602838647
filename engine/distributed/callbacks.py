"""Callbacks that only rank 0 passes on, with rank 0's cancel answer given to every rank."""

from pathlib import Path
from typing import Any, Literal

from engine.callbacks import Callbacks
from engine.distributed.ranks import Ranks


class MainRankCallbacks(Callbacks):
    """Messages, progress, metrics and checkpoints reach the caller's callbacks from rank 0 only.

    `should_stop` is a collective: every rank calls it at the same points, rank 0 asks the caller and
    broadcasts the answer, so a cancel stops every rank at the same step.
    """

    def __init__(self, callbacks: Callbacks, ranks: Ranks) -> None:
        self.callbacks, self.ranks = callbacks, ranks

    def on_message(self, message: str, level: Literal["info", "warning", "error"] = "info") -> None:
        """Rank 0's log line."""
        if self.ranks.is_main:
            self.callbacks.on_message(message, level)

    def on_progress(self, *, step: int, total_steps: int, epoch: float) -> None:
        """Rank 0's progress."""
        if self.ranks.is_main:
            self.callbacks.on_progress(step=step, total_steps=total_steps, epoch=epoch)

    def on_metrics(
        self, *, step: int, epoch: float, split: Literal["train", "eval"], metrics: dict[str, float]
    ) -> None:
        """Rank 0's metrics, already reduced over the ranks."""
        if self.ranks.is_main:
            self.callbacks.on_metrics(step=step, epoch=epoch, split=split, metrics=metrics)

    def on_checkpoint(
        self, *, step: int, epoch: float, path: Path, metrics: dict[str, Any], is_best: bool
    ) -> None:
        """Rank 0's report of a checkpoint every rank has finished writing."""
        if self.ranks.is_main:
            self.callbacks.on_checkpoint(step=step, epoch=epoch, path=path, metrics=metrics, is_best=is_best)

    def should_stop(self) -> bool:
        """Rank 0's answer on every rank (a collective)."""
        asked = self.callbacks.should_stop() if self.ranks.is_main else False
        return self.ranks.broadcast_flag(asked)
