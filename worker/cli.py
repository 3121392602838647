"""`distillery worker` runs distillation jobs; `distillery webhook-worker` sends webhooks."""

from typing import Annotated

import typer


def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs run at once (one process each).")] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a Celery worker that executes distillation jobs."""
    from app.core.celery import WORKER_FLAGS
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
            *WORKER_FLAGS,
        ]
    )


def webhook_worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Threads sending at once; default: DISTILLERY_WEBHOOK_SENDERS.")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a light Celery worker that sends webhooks and re-sends those nobody sent; it never loads torch."""
    from app.core.celery import WORKER_FLAGS
    from app.core.config import get_settings
    from worker.webhook_app import app

    settings = get_settings()
    queue = settings.webhook_queue_name
    app.worker_main(
        [
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(concurrency or settings.webhook_senders),
            "--queues",
            queue,
            "--hostname",
            "webhooks@%h",
            "--loglevel",
            loglevel,
            *WORKER_FLAGS,
        ]
    )


def register(cli: typer.Typer) -> None:
    """Add `worker` and `webhook-worker` to the `distillery` command."""
    cli.command()(worker)
    cli.command()(webhook_worker)
