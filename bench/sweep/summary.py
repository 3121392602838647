"""A finished sweep's figures, from its report and its trials' jobs, and the table that shows them."""

from typing import Any

from bench.demo.comparison import job_seconds
from bench.sweep.follow import format_value, short_name
from distillery.client import DistilleryClient


def summarize_sweep(
    client: DistilleryClient, sweep: dict[str, Any], *, wall_seconds: float
) -> dict[str, Any]:
    """The best trial's parameters, eval value, test metrics, retention, gain and verdict; every trial
    with its job time; the trial counts, wall time and CPU-hours."""
    report = sweep.get("report") or {}
    test, control = report.get("test") or {}, report.get("control") or {}
    return {
        "sweep": sweep["id"],
        "status": sweep["status"],
        "spec": {
            key: sweep["spec"].get(key) for key in ("search", "sampler", "pruner", "budget", "objective")
        },
        "control_mode": control.get("mode"),
        "best": {
            **(report.get("best_trial") or sweep.get("best_trial") or {}),
            "test": test.get("student"),
            "teacher_test": test.get("teacher"),
            "retention": test.get("retention"),
            "control_test": control.get("metrics"),
            "control_measures": control.get("measures"),
            "gain": report.get("gain"),
            "spread": report.get("spread"),
            "verdict": report.get("verdict"),
            "jobs": {"test": test.get("job_id"), "control": control.get("job_id")},
        },
        "trials": [trial_row(client, trial) for trial in sweep["trials"]],
        "counts": report.get("trials"),
        "wall_seconds": round(wall_seconds, 1),
        "cpu_hours": report.get("cpu_hours"),
        "stage_seconds": stage_seconds(client, sweep, report),
    }


def trial_row(client: DistilleryClient, trial: dict[str, Any]) -> dict[str, Any]:
    """A trial's number, status, parameters, eval value, evaluations and its job's time."""
    job = client.get_job(trial["job_id"]) if trial.get("job_id") else None
    return {
        "number": trial["number"],
        "status": trial["status"],
        "params": trial["params"],
        "value": trial.get("value"),
        "evaluations": len(trial.get("eval_curve") or []),
        "job": trial.get("job_id"),
        "seconds": job_seconds(job) if job else None,
    }


def stage_seconds(client: DistilleryClient, sweep: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """Job time of the test measurement and of the control."""
    seconds: dict[str, Any] = {}
    for stage in ("test", "control"):
        job_id = (report.get(stage) or {}).get("job_id")
        seconds[stage] = job_seconds(client.get_job(job_id)) if job_id else None
    return seconds


def format_trials(summary: dict[str, Any]) -> str:
    """The trials as a fixed-width table, the best one marked."""
    best = (summary["best"] or {}).get("number")
    keys = list(summary["spec"]["search"]) if isinstance(summary["spec"]["search"], dict) else []
    header = f"{'':2}{'trial':>5}  {'status':<10}" + "".join(f"{short_name(key):>14}" for key in keys)
    header += f"{'eval':>9}{'evals':>7}{'seconds':>9}"
    lines = [header, "-" * len(header)]
    for row in summary["trials"]:
        value = "-" if row["value"] is None else f"{row['value']:.4f}"
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.0f}"
        lines.append(
            f"{'*' if row['number'] == best else '':2}{row['number']:>5}  {row['status']:<10}"
            + "".join(f"{format_value(row['params'].get(key, '-')):>14}" for key in keys)
            + f"{value:>9}{row['evaluations']:>7}{seconds:>9}"
        )
    counts = summary["counts"] or {}
    lines.append(
        f"{counts.get('total', len(summary['trials']))} trials: {counts.get('completed', '?')} completed, "
        f"{counts.get('pruned', '?')} pruned, {counts.get('failed', '?')} failed; "
        f"wall time {summary['wall_seconds'] / 60:.1f} min, {format_hours(summary['cpu_hours'])} CPU-hours"
    )
    return "\n".join(lines)


def format_hours(hours: float | None) -> str:
    """CPU-hours to two decimals, or `?` when the report has none."""
    return "?" if hours is None else f"{hours:.2f}"
