"""Job commands: submit, jobs, show, cancel, download."""

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from distillery.cli.console import (
    flatten,
    format_age,
    format_duration,
    format_time,
    format_value,
    say,
    status_text,
    stderr,
    stdout,
)
from distillery.cli.follow import follow_job, print_outcome
from distillery.cli.local_files import upload_local_files
from distillery.cli.spec_file import load_spec
from distillery.cli.state import client_of
from distillery.client import STUDENT_ARCHIVE


def submit(
    ctx: typer.Context,
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC.yaml", help="The job spec, YAML or JSON.")],
    name: Annotated[str | None, typer.Option("--name", help="A name to find the job by.")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a spec field: key.path=value (value read as YAML). Repeatable."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Show live progress until the job ends.")
    ] = False,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Submitting twice with one key creates one job.")
    ] = None,
    poll: Annotated[float, typer.Option(help="Seconds between progress polls.", min=0)] = 2.0,
    wait_control: Annotated[
        bool,
        typer.Option(
            "--wait-control/--no-wait-control",
            help="With --follow: once the job succeeded, wait for its control's gain and verdict.",
        ),
    ] = True,
) -> None:
    """Submit a distillation job; a data.*_file given as a local path is uploaded first."""
    spec = load_spec(spec_path, overrides)
    client = client_of(ctx)
    for item in upload_local_files(spec, client.upload_file):
        say(stderr(), f"Uploaded {item.path} as {item.file['id']} for {item.field}")
    job = client.create_job(spec, name=name, idempotency_key=idempotency_key)
    out = stdout()
    say(out, f"Created job {job['id']} ({job['status']})")
    if not follow:
        say(out, f"Follow it with:  distillery events {job['id']} --follow")
        return
    job = _follow(ctx, job["id"], poll, wait_control=wait_control)
    print_outcome(out, job)
    if job["status"] != "succeeded":
        raise typer.Exit(1)


def _follow(ctx: typer.Context, job_id: str, poll: float, *, wait_control: bool = True) -> dict[str, Any]:
    try:
        return follow_job(client_of(ctx), job_id, stdout(), poll=poll, wait_control=wait_control)
    except KeyboardInterrupt:
        say(stderr(), f"Stopped watching; job {job_id} keeps running (distillery cancel {job_id} stops it).")
        raise typer.Exit(130) from None


def list_jobs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="Only jobs in this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100, help="Jobs to show.")] = 20,
    after: Annotated[str | None, typer.Option("--after", help="Show the jobs after this id.")] = None,
    sweep_id: Annotated[str | None, typer.Option("--sweep", help="Only this sweep's jobs.")] = None,
    method: Annotated[str | None, typer.Option("--method", help="Only jobs of this method.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only jobs whose name contains this.")] = None,
) -> None:
    """List jobs, newest first."""
    filters = {"status": status, "sweep_id": sweep_id, "method": method, "name": name}
    page = client_of(ctx).list_jobs(limit=limit, after=after, **filters)
    out = stdout()
    out.print(jobs_table(page.get("data", [])))
    if page.get("has_more"):
        options = {"status": "--status", "sweep_id": "--sweep", "method": "--method", "name": "--name"}
        given = "".join(f" {options[key]} {shlex.quote(value)}" for key, value in filters.items() if value)
        say(out, f"More: distillery jobs{given} --after {page.get('last_id')}", style="dim")


def jobs_table(jobs: list[dict[str, Any]]) -> Table:
    """A table of jobs: id, name, status, method, progress, created."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("ID", no_wrap=True)
    table.add_column("NAME", overflow="fold")
    table.add_column("STATUS", no_wrap=True)
    table.add_column("METHOD", no_wrap=True)
    table.add_column("PROGRESS", no_wrap=True, justify="right")
    table.add_column("CREATED", no_wrap=True)
    for job in jobs:
        table.add_row(
            job["id"],
            job.get("name") or "",
            status_text(job["status"]),
            _method_of(job),
            _steps_of(job),
            format_age(job.get("created_at")),
        )
    return table


def show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the job object as JSON.")] = False,
) -> None:
    """Show a job: status, spec summary, progress, error and result."""
    job = client_of(ctx).get_job(job_id)
    out = stdout()
    if as_json:
        out.print_json(json.dumps(job))
        return
    out.print(job_details(job))
    error = job.get("error")
    if error:
        where = f" ({error['param']})" if error.get("param") else ""
        say(out, f"Error: {error.get('code')}: {error.get('message')}{where}", style="red")
    if job.get("result"):
        out.print("Result", style="bold")
        result = Table.grid(padding=(0, 2))
        for key, value in flatten(job["result"]):
            result.add_row(f"  {key}", format_value(value))
        out.print(result)


def job_details(job: dict[str, Any]) -> Table:
    """The job's fields as a two-column grid."""
    spec = job.get("spec") or {}
    grid = Table.grid(padding=(0, 2))
    grid.add_row("id", job["id"])
    if job.get("name"):
        grid.add_row("name", job["name"])
    grid.add_row("status", status_text(job["status"]))
    if job.get("control_job_id"):
        grid.add_row("control", job["control_job_id"])
    if job.get("parent_id"):
        grid.add_row("control of", job["parent_id"])
    grid.add_row("task", str(spec.get("task", "-")))
    grid.add_row("method", _method_of(job))
    grid.add_row("teacher", _model_ref(spec.get("teacher"), "none"))
    student = spec.get("student") or {}
    grid.add_row(
        "student", f"{student.get('init', '-')} from {_model_ref(student.get('model'), 'the teacher')}"
    )
    data = spec.get("data") or {}
    grid.add_row(
        "data", f"train {data.get('train_file', '-')}, eval {data.get('eval_file') or 'split off train'}"
    )
    grid.add_row("progress", _progress_of(job))
    grid.add_row("attempts", str(job.get("attempts", "-")))
    grid.add_row("created", format_time(job.get("created_at")))
    grid.add_row("started", format_time(job.get("started_at")))
    finished = format_time(job.get("finished_at"))
    if job.get("started_at") and job.get("finished_at"):
        finished += f" (took {format_duration(job['finished_at'] - job['started_at'])})"
    grid.add_row("finished", finished)
    return grid


def cancel(ctx: typer.Context, job_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Cancel a job: a queued one at once, a running one at its next step."""
    job = client_of(ctx).cancel_job(job_id)
    stdout().print(Text.assemble("Job ", job["id"], " ", status_text(job["status"])), soft_wrap=True)


def download(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    artifact: Annotated[
        str | None,
        typer.Option("--artifact", help=f"One artifact as a file (e.g. {STUDENT_ARCHIVE}, report.json)."),
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Destination directory.")] = None,
) -> None:
    """Download a job's student, extracted and ready for from_pretrained, or one artifact."""
    client = client_of(ctx)
    out = stdout()
    if artifact is not None:
        target_dir = out_dir or Path(".")
        target_dir.mkdir(parents=True, exist_ok=True)
        path = client.download_artifact(job_id, artifact, target_dir)
        say(out, f"Saved {artifact} to {path}")
        return
    model_dir = client.download_student(job_id, out_dir or Path(f"student-{job_id}"))
    say(out, f"Student saved to {model_dir}")
    say(out, f'Load it with:  from_pretrained("{model_dir}")')


def _method_of(job: dict[str, Any]) -> str:
    method = (job.get("spec") or {}).get("method") or {}
    return str(method.get("type", "supervised"))


def _steps_of(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    step, total = progress.get("step"), progress.get("total_steps")
    if total:
        return f"{step or 0}/{total}"
    return str(step) if step else "-"


def _progress_of(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    if not progress.get("step") and not progress.get("total_steps"):
        return "not started"
    epoch = progress.get("epoch")
    return f"{_steps_of(job)} steps" + (f", epoch {epoch:g}" if epoch is not None else "")


def _model_ref(ref: dict[str, Any] | None, default: str) -> str:
    if not ref:
        return default
    if ref.get("job"):
        return f"job {ref['job']}"
    return str(ref.get("path") or "-")
