"""The figures of `bench.naive.distill_vs_naive` from its four runs: speed-ups, accuracy deltas, targets."""

from typing import Any

from rich.console import Console
from rich.table import Table

# Distillery's targets against the plain pipeline: how many times faster, and at most how much less accurate.
SPEEDUP_TARGET_NATIVE_BF16 = 5.0
SPEEDUP_TARGET_FP32 = 2.5
# Both sides in the same precision (--plain-precision auto): the engine's own gain.
SPEEDUP_TARGET_SAME_PRECISION = 2.5
ACCURACY_DELTA_TARGET_POINTS = -0.5


def with_rates(run: dict[str, Any]) -> dict[str, Any]:
    """The run with its training throughput: examples seen (rows x epochs) per second of training."""
    return {**run, "examples_per_second": run["train_examples"] * run["epochs"] / run["train_seconds"]}


def compare(plain: dict[str, Any], ours: dict[str, Any], *, speedup_target: float) -> dict[str, Any]:
    """Speed-up (plain wall / ours), accuracy delta (ours - plain, test, in points) and the targets met."""
    speedup = plain["train_seconds"] / ours["train_seconds"]
    delta = 100 * (ours["test_accuracy"] - plain["test_accuracy"])
    return {
        "speedup": speedup,
        "speedup_target": speedup_target,
        "speedup_met": speedup >= speedup_target,
        "accuracy_delta": delta,
        "accuracy_delta_target": ACCURACY_DELTA_TARGET_POINTS,
        "accuracy_delta_met": delta >= ACCURACY_DELTA_TARGET_POINTS,
        "job_time_ratio": plain["job_seconds"] / ours["job_seconds"],
    }


def build_summary(runs: dict[str, dict[str, dict[str, Any]]], *, bf16_native: bool) -> dict[str, Any]:
    """Runs by init and side, with their rates, and the comparison for each init."""
    target = SPEEDUP_TARGET_NATIVE_BF16 if bf16_native else SPEEDUP_TARGET_FP32
    if all(sides["plain"]["precision"] == sides["ours"]["precision"] for sides in runs.values()):
        target = SPEEDUP_TARGET_SAME_PRECISION
    rated = {init: {side: with_rates(run) for side, run in sides.items()} for init, sides in runs.items()}
    comparisons = {
        init: compare(sides["plain"], sides["ours"], speedup_target=target) for init, sides in rated.items()
    }
    return {
        "runs": rated,
        "comparisons": comparisons,
        "all_targets_met": all(c["speedup_met"] and c["accuracy_delta_met"] for c in comparisons.values()),
    }


def verdict(value: float, target: float, unit: str) -> str:
    """`met`, or `missed by ...` with the gap in the figure's unit."""
    return "met" if value >= target else f"missed by {target - value:.2f}{unit}"


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """The runs as a table, then each init's speed-up and accuracy delta against their targets."""
    machine = summary["machine"]
    table = Table(title=f"Distillation, plain Trainer vs Distillery ({machine['device']})")
    columns = (
        "student init",
        "side",
        "precision",
        "train wall s",
        "examples/s",
        "eval acc",
        "test acc",
        "peak RSS MB",
        "whole job s",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in columns[:3] else "right")
    for init, sides in summary["runs"].items():
        for side, run in sides.items():
            table.add_row(
                init,
                side,
                run["precision"],
                f"{run['train_seconds']:.1f}",
                f"{run['examples_per_second']:.1f}",
                f"{run['eval_accuracy']:.4f}",
                f"{run['test_accuracy']:.4f}",
                f"{run['peak_rss_bytes'] / 2**20:.0f}",
                f"{run['job_seconds']:.1f}",
            )
    console.print(table)
    for init, comparison in summary["comparisons"].items():
        speedup, delta = comparison["speedup"], comparison["accuracy_delta"]
        console.print(
            f"{init} init: speedup {speedup:.2f}x (target >= {comparison['speedup_target']:g}: "
            f"{verdict(speedup, comparison['speedup_target'], 'x')}), accuracy delta {delta:+.2f} points "
            f"(target >= {comparison['accuracy_delta_target']:g}: "
            f"{verdict(delta, comparison['accuracy_delta_target'], ' points')}); whole job "
            f"{comparison['job_time_ratio']:.2f}x"
        )
    flags = ", ".join(flag for flag, present in machine["flags"].items() if present) or "none"
    console.print(
        f"CPU: {machine['cpu_model']} ({machine['cores']} cores, {machine['threads']} threads; {flags}); "
        f"auto precision {machine['precision']} ({machine['precision_reason']}); torch {machine['torch']}. "
        f"Load average {summary['load_average_before']} before, {summary['load_average_after']} after."
    )
