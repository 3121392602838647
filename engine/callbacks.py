"""How a caller follows a training run: progress, metrics, checkpoints and cancellation."""

from pathlib import Path
from typing import Any, Literal


class Callbacks:
    """Hooks the training loop calls; the default does nothing, so the engine runs as a plain library."""

    def on_message(self, message: str, level: Literal["info", "warning", "error"] = "info") -> None:
        """A human-readable line for the job's log."""

    def on_progress(self, *, step: int, total_steps: int, epoch: float) -> None:
        """Called after every optimiser step."""

    def on_metrics(
        self, *, step: int, epoch: float, split: Literal["train", "eval"], metrics: dict[str, float]
    ) -> None:
        """Training loss terms (every few steps) or evaluation metrics (each evaluation)."""

    def on_checkpoint(
        self, *, step: int, epoch: float, path: Path, metrics: dict[str, Any], is_best: bool
    ) -> None:
        """A resumable checkpoint was written to `path`."""

    def should_stop(self) -> bool:
        """Checked between steps; True stops the run cleanly (cancellation)."""
        return False
