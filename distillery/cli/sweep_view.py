"""How a sweep reads in a terminal: its headline, the table of trials, and the closing summary."""

from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from distillery.cli.console import STATUS_STYLES, format_duration, format_value, say, status_text
from distillery.client import SWEEP_TERMINAL_STATUSES
from distillery.jobspec.sweep import PRIMARY_METRIC

TRIAL_STYLES = {**STATUS_STYLES, "pruned": "magenta"}
FINISHED_TRIALS = frozenset({"succeeded", "pruned", "failed", "cancelled"})
BEST_STYLE = "bold green"
BEST_MARK = "*"


def objective_of(sweep: dict[str, Any]) -> dict[str, Any]:
    """The objective the trials are ranked by: {"metric", "direction"}, the task's primary one by default."""
    report = sweep.get("report") or {}
    spec = sweep.get("spec") or {}
    objective = dict(report.get("objective") or spec.get("objective") or {})
    default = PRIMARY_METRIC.get(str((spec.get("base") or {}).get("task") or "sequence_classification"))
    if not objective.get("metric") and default:
        objective["metric"], objective["direction"] = default
    return objective


def planned_trials(sweep: dict[str, Any]) -> int | None:
    """How many trials the sweep runs: those it ran once it ended, else its budget (or its grid's size)."""
    if sweep.get("status") in SWEEP_TERMINAL_STATUSES and sweep.get("trials") is not None:
        return len(sweep["trials"])
    spec = sweep.get("spec") or {}
    budget = (spec.get("budget") or {}).get("max_trials")
    space = spec.get("search")
    if spec.get("sampler") != "grid" or not isinstance(space, dict):
        return budget
    points = 1
    for dimension in space.values():
        if isinstance(dimension, list):
            points *= len(dimension)
        elif isinstance(dimension, dict) and dimension.get("step"):
            points *= int((dimension["high"] - dimension["low"]) / dimension["step"] + 1e-9) + 1
        elif isinstance(dimension, dict):  # a whole-number range: every integer in it
            points *= int(dimension["high"] - dimension["low"]) + 1
    return min(points, budget) if budget else points


def trial_counts(sweep: dict[str, Any]) -> tuple[int, int | None, int]:
    """(finished trials, planned trials or None, pruned trials)."""
    trials = sweep.get("trials")
    if trials is None:  # a list may leave the trials out; the report still counts them
        counted = (sweep.get("report") or {}).get("trials") or {}
        finished = sum(int(counted.get(key, 0)) for key in ("completed", "pruned", "failed", "cancelled"))
        return finished, counted.get("total"), int(counted.get("pruned", 0))
    finished = sum(1 for trial in trials if trial.get("status") in FINISHED_TRIALS)
    pruned = sum(1 for trial in trials if trial.get("status") == "pruned")
    return finished, planned_trials(sweep), pruned


def trials_done(sweep: dict[str, Any]) -> str:
    """'5/12', or '5' when the budget is not known."""
    finished, budget, _ = trial_counts(sweep)
    return f"{finished}/{budget}" if budget else str(finished)


def best_value(sweep: dict[str, Any]) -> str:
    """The best trial's objective value with its number, e.g. '0.8741 (#3)', or '-'."""
    best = sweep.get("best_trial")
    if not best or best.get("value") is None:
        return "-"
    return f"{format_value(best['value'])} (#{best.get('number')})"


def headline(sweep: dict[str, Any]) -> Text:
    """'swp_1  running  stage trials  5/12 trials, 2 pruned  best accuracy 0.8741 (#3)'."""
    _, _, pruned = trial_counts(sweep)
    metric = objective_of(sweep).get("metric") or "value"
    parts: list[str | Text] = [Text(sweep["id"], style="bold"), "  ", status_text(sweep["status"])]
    if sweep.get("stage"):
        parts.append(f"  stage {sweep['stage']}")
    parts.append(f"  {trials_done(sweep)} trials" + (f", {pruned} pruned" if pruned else ""))
    parts.append(f"  best {metric} {best_value(sweep)}")
    return Text.assemble(*parts)


def short_names(keys: list[str]) -> dict[str, str]:
    """Each searched field by its last part ('method.alpha' as 'alpha') unless two would read the same."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: name if last.count(name) == 1 else key for key, name in zip(keys, last, strict=True)}


def format_params(params: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """'temperature=4 alpha=0.35 learning_rate=2.1e-04': narrow, one pair per searched field."""
    names = names or short_names(list(params))
    return " ".join(f"{names.get(key, key)}={_param_value(value)}" for key, value in params.items())


def _param_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.2e}"
    return format_value(value)


def trials_table(sweep: dict[str, Any]) -> Table:
    """One row per trial: number, state, objective value, params; the best row marked and bold."""
    trials = sweep.get("trials") or []
    best_number = (sweep.get("best_trial") or {}).get("number")
    metric = objective_of(sweep).get("metric") or "value"
    names = short_names(sorted({key for trial in trials for key in (trial.get("params") or {})}))
    table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    table.add_column("", no_wrap=True, width=1)
    table.add_column("#", no_wrap=True, justify="right")
    table.add_column("STATE", no_wrap=True)
    table.add_column(metric.upper(), no_wrap=True, justify="right", max_width=12)
    table.add_column("PARAMS", overflow="fold", ratio=1)
    for trial in trials:
        best = trial.get("number") == best_number and best_number is not None
        status = str(trial.get("status") or "-")
        value = trial.get("value")
        table.add_row(
            BEST_MARK if best else "",
            str(trial.get("number", "-")),
            Text(status, style=TRIAL_STYLES.get(status, "")),
            "-" if value is None else format_value(value),
            format_params(trial.get("params") or {}, names),
            style=BEST_STYLE if best else None,
        )
    return table


def sweep_panel(sweep: dict[str, Any]) -> Group:
    """What `--follow` redraws: the headline, the trials table and the legend of the mark."""
    parts: list[Any] = [headline(sweep), trials_table(sweep)]
    if sweep.get("best_trial"):
        parts.append(Text(f"{BEST_MARK} best trial so far, on the eval split", style="dim"))
    return Group(*parts)


def trial_line(trial: dict[str, Any], metric: str) -> str:
    """One trial as a log line: 'trial 3 succeeded accuracy=0.8741 alpha=0.35 temperature=4'."""
    value = trial.get("value")
    shown = f" {metric}={format_value(value)}" if value is not None else ""
    params = format_params(trial.get("params") or {})
    return f"trial {trial.get('number')} {trial.get('status')}{shown}" + (f" {params}" if params else "")


def print_summary(console: Console, sweep: dict[str, Any]) -> None:
    """The outcome: status and time, the best trial, its test metrics, the control, gain and verdict."""
    took = None
    if sweep.get("finished_at") and sweep.get("created_at"):
        took = sweep["finished_at"] - sweep["created_at"]
    line = f"Sweep {sweep['id']} {sweep['status']}" + (f" after {format_duration(took)}" if took else "")
    say(console, line, style=STATUS_STYLES.get(sweep["status"], ""))
    error = sweep.get("error")
    if error:
        say(console, f"{error.get('code')}: {error.get('message')}", style="red")
    report = sweep.get("report") or {}
    # The sweep's best trial carries the params; the report's, once there, the final word on the rest.
    best = {**(sweep.get("best_trial") or {}), **(report.get("best_trial") or {})}
    _print_best(console, best or None, objective_of(sweep))
    _print_test(console, report.get("test"))
    _print_control(console, report.get("control"), report.get("gain"), objective_of(sweep).get("metric"))
    _print_verdict(console, report.get("verdict"), report.get("spread"))
    _print_cost(console, sweep, report)


def _print_best(console: Console, best: dict[str, Any] | None, objective: dict[str, Any]) -> None:
    if not best:
        say(console, "No trial finished with a value.")
        return
    metric = objective.get("metric") or "value"
    value = best.get("value")
    shown = f": eval {metric} {format_value(value)}" if value is not None else ""
    say(console, f"Best trial #{best.get('number')} ({best.get('job_id')}){shown}", style="bold")
    for key, param in (best.get("params") or {}).items():
        say(console, f"  {key} = {_param_value(param)}")


def _metrics(values: dict[str, Any] | None) -> str:
    return " ".join(f"{name}={format_value(value)}" for name, value in (values or {}).items())


def _print_test(console: Console, test: dict[str, Any] | None) -> None:
    if not test:
        return
    split = test.get("split") or "test"
    where = "Test" if split == "test" else f"{split.capitalize()} (no test file)"
    say(console, f"{where} ({test.get('job_id')}): student {_metrics(test.get('student'))}")
    if test.get("teacher"):
        say(console, f"  teacher {_metrics(test['teacher'])}")
    retention = test.get("retention") or {}
    if retention:
        kept = " ".join(
            f"{name} {100 * value:.1f}%" for name, value in retention.items() if _is_number(value)
        )
        say(console, f"  retention {kept}")


def _print_control(
    console: Console, control: dict[str, Any] | None, gain: dict[str, Any] | None, metric: str | None
) -> None:
    if control:
        mode = f"{control['mode']}, " if control.get("mode") else ""
        measured = control.get("metrics") or control.get("test")
        outcome = _metrics(measured) if measured else str(control.get("status") or "-")
        say(console, f"Control ({mode}{control.get('job_id')}): {outcome}")
        if control.get("measures"):
            say(console, f"  measures: {control['measures']}", style="dim")
    if gain:
        ranked = sorted(gain.items(), key=lambda item: item[0] != metric)  # the objective's metric first
        signed = ", ".join(f"{name} {value:+.4g}" for name, value in ranked if _is_number(value))
        say(console, f"Gain over the control: {signed}")


def _print_verdict(console: Console, verdict: dict[str, Any] | None, spread: Any) -> None:
    if _is_number(spread):
        say(console, f"Spread of the objective across trials: ±{spread:.4g}")
    if not verdict:
        return
    word = str(verdict.get("verdict"))
    style = {"helped": "bold green", "did not help": "bold yellow"}.get(word, "bold red")
    say(console, f"Verdict: {word}", style=style)
    if verdict.get("explanation"):
        say(console, f"  {verdict['explanation']}")


def _print_cost(console: Console, sweep: dict[str, Any], report: dict[str, Any]) -> None:
    counted = report.get("trials")
    if counted:
        keys = ("completed", "pruned", "failed", "cancelled")
        parts = [f"{counted[key]} {key}" for key in keys if key in counted]
        say(console, f"Trials: {counted.get('total', '-')} run ({', '.join(parts)})")
    else:
        finished, _, pruned = trial_counts(sweep)
        say(console, f"Trials: {finished} finished, {pruned} pruned")
    if "cpu_hours" in report or "gpu_hours" in report:
        cpu, gpu = report.get("cpu_hours"), report.get("gpu_hours")
        say(console, f"Compute: {_hours(cpu)} CPU-hours, {_hours(gpu)} GPU-hours")


def _hours(value: Any) -> str:
    return f"{value:.3g}" if _is_number(value) else "-"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
