"""The sweep's best trial against the demo's own recipe: measured in the same run, and as recorded."""

import json
from typing import Any

from bench.paths import RESULTS

# The demo's result on record (`scripts/demo`: 4,000 labeled and 8,000 unlabeled tweets).
RECORDED = RESULTS / "demo.json"


def defaults_row(comparison: dict[str, Any]) -> dict[str, Any]:
    """The figures of the demo's recipe from its comparison summary: eval and test accuracy, retention,
    gain over its control in points, and the jobs."""
    student = comparison["rows"]["distilled student"]
    return {
        "eval_accuracy": student["eval"]["accuracy"],
        "test_accuracy": comparison["student_accuracy"],
        "teacher_test_accuracy": comparison["teacher_accuracy"],
        "control_test_accuracy": comparison["control_accuracy"],
        "retention": comparison["retention"],
        "gain_points": comparison["gain_over_control_points"],
        "jobs": comparison["jobs"],
        "seconds": comparison["seconds"],
    }


def recorded_defaults() -> dict[str, Any] | None:
    """The defaults' figures in the recorded demo result, with the data they ran on; None without it."""
    if not RECORDED.is_file():
        return None
    recorded = json.loads(RECORDED.read_text())
    return {
        "retention": recorded["retention"],
        "gain_points": recorded["gain_over_control_points"],
        "test_accuracy": recorded["student_accuracy"],
        "data": recorded["data"],
        "source": str(RECORDED.relative_to(RESULTS.parents[1])),
    }


def best_row(summary: dict[str, Any]) -> dict[str, Any]:
    """The best trial's figures in the shape of `defaults_row`: accuracy as a fraction, gain in points."""
    best = summary["best"]
    gain = accuracy_of(best.get("gain"))
    return {
        "eval_accuracy": best.get("value"),
        "test_accuracy": accuracy_of(best.get("test")),
        "retention": accuracy_of(best.get("retention")),
        "gain_points": None if gain is None else 100 * gain,
        "verdict": (best.get("verdict") or {}).get("verdict"),
    }


def accuracy_of(value: Any) -> float | None:
    """`value["accuracy"]` for a dict of metrics, the value itself for a number, else None."""
    if isinstance(value, dict):
        return value.get("accuracy")
    return value if isinstance(value, int | float) else None


def format_comparison(summary: dict[str, Any]) -> str:
    """Best trial, the defaults of this run and the recorded defaults, side by side on the test split."""
    rows = {"best trial": best_row(summary)}
    if summary.get("defaults"):
        rows["demo defaults, this run"] = summary["defaults"]
    if summary.get("recorded_defaults"):
        recorded = summary["recorded_defaults"]
        rows[f"defaults recorded ({recorded['data']['transfer_rows']:,} unlabeled)"] = recorded
    header = f"{'recipe':<36}{'eval acc':>10}{'test acc':>10}{'retention':>11}{'gain (pts)':>12}  verdict"
    lines = [header, "-" * len(header)]
    for name, row in rows.items():
        verdict = row.get("verdict") or ""
        lines.append(
            f"{name:<36}{percent(row.get('eval_accuracy')):>10}{percent(row.get('test_accuracy')):>10}"
            f"{percent(row.get('retention'), 1):>11}{signed(row.get('gain_points')):>12}  {verdict}"
        )
    return "\n".join(lines)


def percent(value: float | None, digits: int = 2) -> str:
    """A fraction as a percentage, or `-`."""
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def signed(value: float | None) -> str:
    """A gain with its sign, or `-`."""
    return "-" if value is None else f"{value:+.2f}"
