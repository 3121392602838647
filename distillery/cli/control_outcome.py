"""A job's control after the job itself: following it until its gain is in, and the verdict line."""

from typing import Any

from rich.console import Console

from distillery.cli.console import say


def pending_control(job: dict[str, Any]) -> str | None:
    """The id of a succeeded job's control whose gain is not in yet; None otherwise."""
    control = (job.get("result") or {}).get("control") or {}
    if job.get("status") != "succeeded" or control.get("status") != "pending":
        return None
    return str(control.get("job_id") or job.get("control_job_id") or "") or None


def control_lines(job: dict[str, Any]) -> list[tuple[str, str]]:
    """The control's outcome as (text, style) lines: the verdict on the primary metric and what the
    control measures, or why there is no gain; none for a job without a control."""
    control = (job.get("result") or {}).get("control")
    if not isinstance(control, dict):
        return []
    job_id, status = control.get("job_id"), control.get("status")
    if status != "succeeded":
        return [(f"Control {job_id} {status}: no gain to report", "yellow")]
    verdict = control.get("verdict")
    if not isinstance(verdict, dict):
        gains = ", ".join(
            f"{name} {value:+.4f}" for name, value in sorted((control.get("gain") or {}).items())
        )
        return [(f"Control {job_id} on {control.get('split')}: gain {gains}", "")]
    style = "green" if verdict["verdict"] == "helped" else "yellow"
    lines = [
        (
            f"Control {job_id} ({control.get('mode', 'same_init')}) on {control.get('split')}: "
            f"verdict {verdict['verdict']}: {verdict['explanation']}",
            style,
        )
    ]
    if control.get("measures"):
        lines.append((f"The control measures: {control['measures']}", "dim"))
    return lines


def print_control(console: Console, job: dict[str, Any]) -> None:
    """Print `control_lines`."""
    for text, style in control_lines(job):
        say(console, text, style=style)
