"""`distillery sweep`: submit a recipe sweep, follow its trials, and read its report."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from distillery.cli.console import format_age, format_duration, format_time, say, status_text, stderr, stdout
from distillery.cli.local_files import upload_local_files
from distillery.cli.spec_file import load_spec, parse_override, set_path
from distillery.cli.state import client_of
from distillery.cli.sweep_follow import follow_sweep
from distillery.cli.sweep_view import best_value, objective_of, print_summary, trials_done, trials_table

app = typer.Typer(
    help="Search a distillation recipe: trials as jobs, the best measured once on test, with a verdict.",
    no_args_is_help=True,
)
# The keys of a range in the search space; anything else after `search.` names the searched field.
RANGE_KEYS = frozenset({"low", "high", "log", "step"})
SWEEP_KEYS = "base, search, budget, objective, sampler, pruner, control"
Poll = Annotated[float, typer.Option(help="Seconds between polls of the sweep.", min=0)]


def load_sweep_spec(path: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The sweep spec in a YAML or JSON file, with each 'key.path=value' override applied in order.

    Under `search` the field searched is one key with dots in it: `search.method.alpha.high=0.8` sets
    the `high` end of `search["method.alpha"]`, `search.method.alpha=[0.2, 0.5]` replaces its choices.
    """
    spec = load_spec(path, describes=SWEEP_KEYS)
    for override in overrides or []:
        keys, value = parse_override(override)
        if keys[0] == "search" and len(keys) > 2:
            ends_in_range_key = keys[-1] in RANGE_KEYS and len(keys) > 3
            field = keys[1:-1] if ends_in_range_key else keys[1:]
            keys = ["search", ".".join(field), *keys[1 + len(field) :]]
        set_path(spec, keys, value)
    return spec


@app.command()
def submit(
    ctx: typer.Context,
    spec_path: Annotated[Path, typer.Argument(metavar="FILE", help="The sweep spec, YAML or JSON.")],
    name: Annotated[str | None, typer.Option("--name", help="A name to find the sweep by.")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a spec field: key.path=value (value read as YAML). Repeatable."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Show the trials live and the report at the end.")
    ] = False,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Submitting twice with one key creates one sweep.")
    ] = None,
    poll: Poll = 5.0,
) -> None:
    """Submit a sweep; prints its id alone (for `$(...)`), or with --follow, its trials and report."""
    spec = load_sweep_spec(spec_path, overrides)
    client = client_of(ctx)
    if isinstance(spec.get("base"), dict):
        for item in upload_local_files(spec["base"], client.upload_file):
            say(stderr(), f"Uploaded {item.path} as {item.file['id']} for base.{item.field}")
    sweep = client.create_sweep(spec, name=name, idempotency_key=idempotency_key)
    if not follow:
        say(stdout(), sweep["id"])
        say(stderr(), f"Follow it with:  distillery sweep follow {sweep['id']}", style="dim")
        return
    say(stderr(), f"Created sweep {sweep['id']} ({sweep['status']})")
    _follow_to_the_end(ctx, sweep["id"], poll)


@app.command("follow")
def follow_command(
    ctx: typer.Context, sweep_id: Annotated[str, typer.Argument(metavar="ID")], poll: Poll = 5.0
) -> None:
    """Show a sweep's trials live until it ends, then its report; exit code 0 only if it succeeded."""
    _follow_to_the_end(ctx, sweep_id, poll)


def _follow_to_the_end(ctx: typer.Context, sweep_id: str, poll: float) -> None:
    out = stdout()
    try:
        sweep = follow_sweep(client_of(ctx), sweep_id, out, poll=poll)
    except KeyboardInterrupt:
        message = (
            f"Stopped watching; sweep {sweep_id} keeps running (distillery sweep cancel {sweep_id} stops it)."
        )
        say(stderr(), message)
        raise typer.Exit(130) from None
    print_summary(out, sweep)
    if sweep["status"] != "succeeded":
        raise typer.Exit(1)


@app.command("get")
def get_sweep(
    ctx: typer.Context,
    sweep_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the sweep object as JSON.")] = False,
) -> None:
    """Show a sweep: status, stage, the trials table and, once it ends, its report."""
    sweep = client_of(ctx).get_sweep(sweep_id)
    out = stdout()
    if as_json:
        out.print_json(json.dumps(sweep))
        return
    out.print(sweep_details(sweep))
    out.print(trials_table(sweep))
    if sweep["status"] in ("succeeded", "failed", "cancelled"):
        print_summary(out, sweep)


def sweep_details(sweep: dict[str, Any]) -> Table:
    """The sweep's fields as a two-column grid."""
    spec = sweep.get("spec") or {}
    objective = objective_of(sweep)
    grid = Table.grid(padding=(0, 2))
    grid.add_row("id", sweep["id"])
    if sweep.get("name"):
        grid.add_row("name", sweep["name"])
    grid.add_row("status", status_text(sweep["status"]))
    grid.add_row("stage", str(sweep.get("stage") or "-"))
    grid.add_row("objective", f"{objective.get('direction', '-')} eval {objective.get('metric', '-')}")
    grid.add_row("search", f"{spec.get('sampler', '-')} sampler, {spec.get('pruner', '-')} pruner")
    grid.add_row("trials", trials_done(sweep))
    grid.add_row("best", best_value(sweep))
    grid.add_row("created", format_time(sweep.get("created_at")))
    finished = format_time(sweep.get("finished_at"))
    if sweep.get("created_at") and sweep.get("finished_at"):
        finished += f" (took {format_duration(sweep['finished_at'] - sweep['created_at'])})"
    grid.add_row("finished", finished)
    return grid


@app.command("list")
def list_sweeps(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100, help="Sweeps to show.")] = 20,
    after: Annotated[str | None, typer.Option("--after", help="Show the sweeps after this id.")] = None,
) -> None:
    """List sweeps, newest first."""
    page = client_of(ctx).list_sweeps(limit=limit, after=after)
    out = stdout()
    out.print(sweeps_table(page.get("data", [])))
    if page.get("has_more"):
        say(out, f"More: distillery sweep list --after {page.get('last_id')}", style="dim")


def sweeps_table(sweeps: list[dict[str, Any]]) -> Table:
    """A table of sweeps: id, name, status, stage, trials done, best value, created."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("ID", no_wrap=True)
    table.add_column("NAME", overflow="fold")
    table.add_column("STATUS", no_wrap=True)
    table.add_column("STAGE", no_wrap=True)
    table.add_column("TRIALS", no_wrap=True, justify="right")
    table.add_column("BEST", no_wrap=True, justify="right")
    table.add_column("CREATED", no_wrap=True)
    for sweep in sweeps:
        table.add_row(
            sweep["id"],
            sweep.get("name") or "",
            status_text(sweep["status"]),
            str(sweep.get("stage") or "-"),
            trials_done(sweep),
            best_value(sweep),
            format_age(sweep.get("created_at")),
        )
    return table


@app.command()
def cancel(ctx: typer.Context, sweep_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Cancel a sweep: no new trial starts, and its running jobs are cancelled."""
    sweep = client_of(ctx).cancel_sweep(sweep_id)
    stdout().print(Text.assemble("Sweep ", sweep["id"], " ", status_text(sweep["status"])), soft_wrap=True)


@app.command()
def delete(ctx: typer.Context, sweep_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Delete a finished sweep and all of its jobs."""
    client_of(ctx).delete_sweep(sweep_id)
    say(stdout(), f"Deleted sweep {sweep_id} and its jobs")
