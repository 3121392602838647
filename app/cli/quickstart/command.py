"""`distillery quickstart`: a first distillation, offline, from the bundled MiniLM and tweets."""

from typing import Annotated

import typer

from app.cli.quickstart.comparison import summarize
from app.cli.quickstart.report import report
from app.cli.quickstart.service import local_service
from app.cli.quickstart.specs import (
    Sizes,
    distillation_spec,
    shown_path,
    teacher_spec,
)
from app.cli.quickstart.steps import Places, prepare, run_jobs, write_spec
from distillery.cli.console import say, stdout
from distillery.cli.state import CliState


def quickstart(
    ctx: typer.Context,
    train_rows: Annotated[int, typer.Option(min=8, help="Labelled tweets the jobs train on.")] = 1000,
    eval_rows: Annotated[int, typer.Option(min=4, help="Tweets that choose each job's best epoch.")] = 300,
    test_rows: Annotated[int, typer.Option(min=4, help="Held-out tweets the results are measured on.")] = 500,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of each job.")] = 2,
    max_length: Annotated[int, typer.Option(min=8, help="Tokens kept of each tweet.")] = 64,
    port: Annotated[int, typer.Option(help="Port of the local service, used or started.")] = 8000,
    poll: Annotated[float, typer.Option(min=0.1, help="Seconds between progress polls.")] = 2.0,
) -> None:
    """Fine-tune a MiniLM teacher on tweets, distil it into 3 layers beside a control, show what to try next.

    Offline, about 5 minutes on 2 CPU cores. It uses the service at --url (or DISTILLERY_URL), or one
    answering on --port, and otherwise runs the embedded service on the data dir while it works. A
    second run reuses the models, uploads and jobs of the first.
    """
    from app.core.config import get_settings

    settings = get_settings()
    state = ctx.ensure_object(CliState)
    places = Places.of(settings)
    console = stdout()
    sizes = Sizes(train_rows, eval_rows, test_rows, epochs, max_length)
    files = prepare(places, sizes, console)
    local = {split: shown_path(path) for split, path in files.items()}
    teacher_file = write_spec(places, "teacher", teacher_spec(local, sizes))
    distil_file = write_spec(places, "distil", distillation_spec(local, sizes))
    api_key = state.api_key or settings.dev_api_key or ""
    log = places.work / "service.log"
    with local_service(places.data_dir, url=state.url, api_key=api_key, port=port, log_path=log) as (
        client,
        started,
    ):
        say(
            console,
            f"Service: {client.base_url}" + (f" (started here; log {shown_path(log)})" if started else ""),
        )
        jobs, student = run_jobs(client, places, teacher_file, distil_file, console=console, poll=poll)
    files_shown = {
        "teacher": shown_path(teacher_file),
        "distil": shown_path(distil_file),
        "student": shown_path(student),
    }
    report(
        console,
        summarize(jobs["teacher"], jobs["distilled"], jobs["control"]),
        jobs,
        places,
        files_shown,
        started=started,
    )
