"""What the quickstart prints at the end: the results, where everything is, and what to run next."""

from pathlib import Path
from typing import Any

from rich.console import Console

from app.cli.quickstart.comparison import format_table
from app.cli.quickstart.specs import BASE_MODEL, TEACHER_MODEL, shown_path
from app.cli.quickstart.steps import Places
from distillery.cli.console import say


def report(
    console: Console,
    summary: dict[str, Any],
    jobs: dict[str, dict[str, Any]],
    places: Places,
    shown: dict[str, str],
    *,
    started: bool,
) -> None:
    """The table, the gain as the job's result gives it, the files, the commands it ran and the next ones."""
    console.print()
    say(console, format_table(summary))
    gain = ((jobs["distilled"].get("result") or {}).get("control") or {}).get("gain") or {}
    if "accuracy" in gain:
        say(
            console, f"result.control.gain.accuracy of job {jobs['distilled']['id']}: {gain['accuracy']:+.4f}"
        )
    console.print()
    root = shown_path(places.models_root)
    rows = {
        "models": f"{root}/{BASE_MODEL}, {root}/{TEACHER_MODEL}",
        "tweets": f"{shown_path(places.work)}/tweets-train.jsonl, tweets-eval.jsonl, tweets-test.jsonl",
        "job specs": f"{shown['teacher']}, {shown['distil']}",
        "student": f"{shown['student']} (from_pretrained loads it)",
    }
    for name, where in rows.items():
        say(console, f"{name:<10} {where}")
    console.print()
    print_commands(console, jobs, places, shown, started=started)


def print_commands(
    console: Console, jobs: dict[str, dict[str, Any]], places: Places, shown: dict[str, str], *, started: bool
) -> None:
    """The steps as commands to repeat by hand, then the next ones to try."""
    teacher, distilled, control = (jobs[name]["id"] for name in ("teacher", "distilled", "control"))
    download = f"{shown_path(places.work)}/teacher"
    teacher_dir = Path(shown_path(places.models_root)) / TEACHER_MODEL
    lines = [
        "What it ran, as commands (submit uploads the local files a spec names):",
        *(["  distillery up &"] if started else []),
        f"  distillery submit {shown['teacher']} --follow     # {teacher}: fine-tunes {BASE_MODEL}",
        f"  distillery download {teacher} --out {download}",
        f"  mkdir -p {teacher_dir.parent} && rm -rf {teacher_dir}",
        f"  cp -r {download}/student {teacher_dir}",
        f"  distillery submit {shown['distil']} --follow      # {distilled}, and its control {control}",
        f"  distillery download {distilled} --out {shown_path(places.work)}/student",
        "",
        "Next:",
        *(
            ["  distillery up                          # serves these jobs again; dashboard at /ui/"]
            if started
            else []
        ),
        f"  distillery show {distilled}",
        "  distillery submit distillery/examples/feature.yaml --follow     # a classification example, as is",
        "  distillery submit distillery/examples/response.yaml --set control=true --follow",
    ]
    for line in lines:
        say(console, line)
