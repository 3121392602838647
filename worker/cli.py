"""`distillery worker`: run a Celery worker that executes distillation jobs."""

from typing import Annotated

import typer


def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once (one process each).")] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a Celery worker that executes distillation jobs."""
    from app.core.config import get_settings
    from worker.celery_app import celery_app

    queue = get_settings().queue_name
    celery_app.worker_main(
        [
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--queues",
            queue,
            "--loglevel",
            loglevel,
        ]
    )


def register(cli: typer.Typer) -> None:
    """Add `worker` to the `distillery` command."""
    cli.command()(worker)
