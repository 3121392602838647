"""Posts a sweep through `POST /v1/sweeps` and shows its trials as they start and end, until it ends."""

import time
from typing import Any

from rich.console import Console

from distillery.client import DistilleryClient

ENDED = {"succeeded", "failed", "cancelled"}


def follow_sweep(
    client: DistilleryClient, sweep_id: str, console: Console, *, poll: float = 5.0
) -> dict[str, Any]:
    """Print each change of stage and of a trial's status until the sweep ends; the ended sweep."""
    shown: dict[int, str] = {}
    stage = None
    while True:
        sweep = client.get_sweep(sweep_id)
        if sweep["stage"] != stage:
            stage = sweep["stage"]
            console.print(f"[bold]sweep {sweep_id}[/]: stage {stage}")
        for trial in sweep["trials"]:
            if shown.get(trial["number"]) != trial["status"]:
                shown[trial["number"]] = trial["status"]
                console.print(trial_line(trial))
        if sweep["status"] in ENDED:
            console.print(f"[bold]sweep {sweep_id}[/]: {sweep['status']}")
            return sweep
        time.sleep(poll)


def trial_line(trial: dict[str, Any]) -> str:
    """One line on a trial: its number, status, parameters and, once it has one, its value."""
    params = ", ".join(f"{short_name(key)}={format_value(value)}" for key, value in trial["params"].items())
    value = trial.get("value")
    scored = "" if value is None else f": {value:.4f}"
    return f"  trial {trial['number']:>2} {trial['status']:<9} {params}{scored}"


def short_name(key: str) -> str:
    """A searched field's last part (`method.alpha` -> `alpha`)."""
    return key.rsplit(".", 1)[-1]


def format_value(value: Any) -> str:
    """A parameter's value, floats to four significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
