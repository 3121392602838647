"""The `events` command: a job's log of messages, metrics, checkpoints and status changes."""

from typing import Annotated, Any

import typer
from rich.markup import escape

from distillery.cli.console import format_metrics, format_time, say, stderr, stdout
from distillery.cli.state import client_of

LEVEL_STYLES = {"debug": "dim", "info": "", "warning": "yellow", "error": "red"}


def events(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    after: Annotated[
        int | None, typer.Option("--after", help="Only events after this sequence number.")
    ] = None,
    poll: Annotated[
        float, typer.Option(help="Seconds between polls with --follow where the server cannot stream.", min=0)
    ] = 1.0,
) -> None:
    """Print a job's events."""
    out = stdout()
    try:
        for event in client_of(ctx).iter_events(job_id, follow=follow, poll=poll, after=after):
            out.print(format_event(event), soft_wrap=True)
    except KeyboardInterrupt:
        say(stderr(), "Stopped following.")
        raise typer.Exit(130) from None


def format_event(event: dict[str, Any]) -> str:
    """One event as one line of rich markup: time, level, type and what happened."""
    level = str(event.get("level") or "info")
    kind = str(event.get("type") or "message")
    data = event.get("data") or {}
    text = str(event.get("message") or "")
    if kind == "metrics" and data.get("metrics"):
        where = f"{data.get('split', 'train')} step {data.get('step')} epoch {data.get('epoch')}"
        text = f"{where}: {format_metrics(data['metrics'])}"
    line = escape(f"{format_time(event.get('created_at'))}  {level:<7}  {kind:<10}  {text}")
    style = LEVEL_STYLES.get(level, "")
    return f"[{style}]{line}[/]" if style else line
