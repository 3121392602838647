"""Training curves: every step's loss terms and every evaluation in metrics.jsonl, drawn to curves.png."""

import json
import logging
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # no display on a worker
import matplotlib.pyplot as plt  # noqa: E402

logger = logging.getLogger(__name__)
# Logged per step beside the loss terms but not losses: drawn on no loss axis.
NOT_LOSSES = frozenset({"step", "epoch", "split", "lr", "grad_norm", "on_policy"})


class MetricsLog:
    """Appends one JSON line per record to `path`; a resumed run drops the lines after its checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate_after(self, step: int) -> None:
        """Forget records past `step` (they are replayed after a resume)."""
        kept = [record for record in self.read() if record["step"] <= step]
        self.path.write_text("".join(json.dumps(record) + "\n" for record in kept))

    def append(self, *, step: int, epoch: float, split: str, metrics: dict[str, float]) -> None:
        """Record the metrics of one training step or one evaluation."""
        record = {"step": step, "epoch": round(epoch, 4), "split": split, **metrics}
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every record so far, in order."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def _series(records: list[dict[str, Any]], split: str) -> dict[str, tuple[list[int], list[float]]]:
    series: dict[str, tuple[list[int], list[float]]] = {}
    for record in records:
        if record["split"] != split:
            continue
        for name, value in record.items():
            if name in NOT_LOSSES or not isinstance(value, int | float):
                continue
            steps, values = series.setdefault(name, ([], []))
            steps.append(record["step"])
            values.append(float(value))
    return series


def moving_average(values: list[float], window: int) -> list[float]:
    """The mean of each value and the `window - 1` before it (fewer at the start)."""
    sums = np.cumsum([0.0, *values])
    return [float((sums[end] - sums[max(0, end - window)]) / min(end, window)) for end in range(1, len(sums))]


def plot_curves(records: list[dict[str, Any]], path: Path, *, title: str) -> Path:
    """Loss terms per step (left) and eval metrics per evaluation (right), as a PNG.

    Per-step losses are noisy, so each is drawn faintly with a moving average over a fiftieth of the
    run drawn over it.
    """
    figure, (train_axes, eval_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for name, (steps, values) in _series(records, "train").items():
        raw = train_axes.plot(steps, values, linewidth=0.6, alpha=0.25)[0]
        window = max(1, len(values) // 50)
        train_axes.plot(
            steps, moving_average(values, window), label=name, color=raw.get_color(), linewidth=1.5
        )
    train_axes.set(title="training loss terms (moving average, faint: per step)", xlabel="step")
    for name, (steps, values) in _series(records, "eval").items():
        eval_axes.plot(steps, values, label=name, marker="o")
    eval_axes.set(title="evaluation", xlabel="step")
    for axes in (train_axes, eval_axes):
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="small")
        axes.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
