"""`distillery worker` runs distillation jobs; `distillery webhook-worker` sends webhooks."""

from typing import Annotated, Literal

import typer

# What every worker runs with, so that a lost broker is a reconnect. A worker's broker connection must
# carry its task queue alone: remote control and gossip each consume a fanout queue on it. When the broker
# goes away, closing that channel fails, kombu stops closing the others, and the task channel, left open
# with messages not yet acked (a running job's, a webhook retry waiting for its countdown), is used again
# once the transport is gone: `AttributeError: 'NoneType' object has no attribute 'hostname'` ends the
# worker. Without mingle, a reconnect does not wait a second for neighbours either. Nothing here uses
# them: the database, not a message, says what to do.
RECONNECTING = ("--without-gossip", "--without-mingle")
QUIET_HELP = "No start-up banner, and warnings and errors only (as `distillery up` runs it)."
QUIET_LEVEL = "WARNING"


def worker_arguments(
    *,
    pool: Literal["prefork", "threads"],
    concurrency: int,
    queue: str,
    loglevel: str = "INFO",
    hostname: str | None = None,
) -> list[str]:
    """The arguments after `celery -A <app>` that start a worker on `queue` (comma-separated queues; the
    tests use them too)."""
    named = f"--hostname={hostname}" if hostname else None
    return [
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--queues={queue}",
        *filter(None, [named]),
        f"--loglevel={loglevel}",
        *RECONNECTING,
    ]


def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Jobs run at once (one process each); default: its devices.")
    ] = None,
    devices: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Devices offered: GPUs, or CPU process slots (default: the GPUs, else os.cpu_count()).",
            envvar="DISTILLERY_WORKER_DEVICES",
        ),
    ] = None,
    accelerator: Annotated[
        Literal["auto", "cpu", "cuda"],
        typer.Option(
            help="Offer cuda or cpu; auto: cuda when nvidia-smi lists GPUs.",
            envvar="DISTILLERY_WORKER_ACCELERATOR",
        ),
    ] = "auto",
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    quiet: Annotated[bool, typer.Option(help=QUIET_HELP)] = False,
) -> None:
    """Run a Celery worker that runs the distillation jobs it can serve: its accelerator's and `auto` ones."""
    import os

    from app.core.celery import job_queue
    from app.core.config import get_settings
    from worker.capacity import list_gpus, probe

    # The settings are read again by every process of the worker, which inherit these.
    os.environ["DISTILLERY_WORKER_ACCELERATOR"] = accelerator
    if devices is not None:
        os.environ["DISTILLERY_WORKER_DEVICES"] = str(devices)
    get_settings.cache_clear()
    settings = get_settings()
    capacity = probe(settings, gpus=list_gpus())
    queues = f"{settings.queue_name},{job_queue(settings.queue_name, capacity.accelerator)}"
    from worker.celery_app import celery_app

    arguments = worker_arguments(
        pool="prefork",
        concurrency=concurrency or capacity.concurrency,
        queue=queues,
        loglevel=QUIET_LEVEL if quiet else loglevel,
    )
    celery_app.worker_main([*quiet_flag(quiet), *arguments])


def webhook_worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Threads sending at once; default: DISTILLERY_WEBHOOK_SENDERS.")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    quiet: Annotated[bool, typer.Option(help=QUIET_HELP)] = False,
) -> None:
    """Run a light Celery worker that sends webhooks and re-sends those nobody sent; it never loads torch."""
    from app.core.config import get_settings
    from worker.webhook_app import app

    settings = get_settings()
    arguments = worker_arguments(
        pool="threads",
        concurrency=concurrency or settings.webhook_senders,
        queue=settings.webhook_queue_name,
        loglevel=QUIET_LEVEL if quiet else loglevel,
        hostname="webhooks@%h",
    )
    app.worker_main([*quiet_flag(quiet), *arguments])


def quiet_flag(quiet: bool) -> list[str]:
    """Celery's own option that leaves out its start-up banner."""
    return ["--quiet"] if quiet else []


def register(cli: typer.Typer) -> None:
    """Add `worker` and `webhook-worker` to the `distillery` command."""
    cli.command()(worker)
    cli.command()(webhook_worker)
