"""Helpers for engine tests: callbacks that record what a run reports, and reading its loss curve."""

import json
from pathlib import Path
from typing import Any

from engine.callbacks import Callbacks


class RecordingCallbacks(Callbacks):
    """Callbacks that keep everything they are told and can ask the run to stop after some step."""

    def __init__(self, stop_after_step: int | None = None) -> None:
        self.stop_after_step = stop_after_step
        self.messages: list[str] = []
        self.progress: list[int] = []
        self.metrics: list[tuple[str, int, dict[str, float]]] = []
        self.checkpoints: list[tuple[int, Path, bool]] = []

    def on_message(self, message: str, level: str = "info") -> None:  # type: ignore[override]
        self.messages.append(message)

    def on_progress(self, *, step: int, total_steps: int, epoch: float) -> None:
        self.progress.append(step)

    def on_metrics(self, *, step: int, epoch: float, split: str, metrics: dict[str, float]) -> None:  # type: ignore[override]
        self.metrics.append((split, step, dict(metrics)))

    def on_checkpoint(
        self, *, step: int, epoch: float, path: Path, metrics: dict[str, Any], is_best: bool
    ) -> None:
        self.checkpoints.append((step, path, is_best))

    def should_stop(self) -> bool:
        return (
            self.stop_after_step is not None
            and bool(self.progress)
            and self.progress[-1] >= self.stop_after_step
        )


def train_losses(workdir: Path) -> list[float]:
    """The total training loss of every step, from the run's metrics.jsonl."""
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [record["loss"] for record in map(json.loads, lines) if record["split"] == "train"]


def loss_fell(losses: list[float], window: int = 3) -> bool:
    """Whether the mean of the last `window` losses is below the mean of the first `window`."""
    return sum(losses[-window:]) / window < sum(losses[:window]) / window
