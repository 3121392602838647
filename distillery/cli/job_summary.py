"""The end of a followed job: teacher, student and control side by side, retention, gain and speed-up."""

from typing import Any

from rich.console import Console
from rich.table import Table

from distillery.cli.console import format_value

# The metrics shown per task, in order; a report's other metrics stay in `distillery get`.
SHOWN_METRICS = ("accuracy", "macro_f1", "perplexity", "loss")


def summary_table(job: dict[str, Any]) -> Table | None:
    """Metrics of the teacher, the student and the control on the report's split; None before a report."""
    result = job.get("result") or {}
    student = result.get("student") or {}
    split = str(result.get("retention_split") or "eval")
    columns = {
        "teacher": (result.get("teacher") or {}).get(split) or {},
        "student": student.get(split) or {},
        "control": _control_metrics(result.get("control"), split),
    }
    names = [name for name in SHOWN_METRICS if any(name in metrics for metrics in columns.values())]
    if not names:
        return None
    table = Table(title=f"On the {split} split", title_justify="left", box=None, pad_edge=False)
    table.add_column("")
    shown = [model for model, metrics in columns.items() if metrics or model != "control"]
    for model in shown:
        table.add_column(model, justify="right")
    for name in names:
        table.add_row(name, *(_cell(columns[model].get(name)) for model in shown))
    return table


def summary_lines(job: dict[str, Any]) -> list[str]:
    """Retention, gain over the control, speed-up over the teacher and the student's size, where known."""
    result = job.get("result") or {}
    lines = []
    retention = result.get("retention") or {}
    if retention:
        lines.append("Retention: " + ", ".join(f"{name} {value:.1%}" for name, value in retention.items()))
    gain = (result.get("control") or {}).get("gain") or {}
    if gain:
        lines.append(
            "Gain over the control: " + ", ".join(f"{name} {value:+.4f}" for name, value in gain.items())
        )
    speedup = (result.get("latency") or {}).get("speedup")
    if speedup:
        lines.append(f"Speed-up over the teacher: {speedup:.2f}x (median forward pass)")
    size = (result.get("student") or {}).get("size_on_disk_bytes")
    if size:
        lines.append(f"Student: {size / 1e6:.1f} MB on disk")
    return lines


def print_summary(console: Console, job: dict[str, Any]) -> None:
    """Print the table and the lines."""
    table = summary_table(job)
    if table is not None:
        console.print(table)
    for line in summary_lines(job):
        console.print(line, soft_wrap=True, markup=False)


def _control_metrics(control: Any, split: str) -> dict[str, Any]:
    """The control's metrics on the parent's report split, once it succeeded."""
    if not isinstance(control, dict) or control.get("split", split) != split:
        return {}
    return dict(control.get("control_metrics") or {})


def _cell(value: Any) -> str:
    return "-" if value is None else format_value(value)
