"""The Celery app, configured here from the service settings: the API publishes with it, workers run it."""

from collections.abc import Sequence

from celery import Celery
from kombu import Queue

from app.core.config import Settings, get_settings

RUN_JOB_TASK = "distillery.run_job"
SEND_WEBHOOK_TASK = "distillery.send_webhook"
ACCELERATORS = ("cpu", "cuda")


def job_queue(queue_name: str, accelerator: str) -> str:
    """The queue of jobs asking for `accelerator`; `auto` jobs keep the plain name (older messages too)."""
    return queue_name if accelerator == "auto" else f"{queue_name}.{accelerator}"


def job_queues(queue_name: str) -> list[str]:
    """Every job queue: the `auto` one, then one per accelerator."""
    return [queue_name, *(job_queue(queue_name, accelerator) for accelerator in ACCELERATORS)]


def make_celery(settings: Settings | None = None, *, include: Sequence[str] = ()) -> Celery:
    """A Celery app configured for long GPU jobs: one job at a time per pool process, acked when done.

    The API sends tasks by name and needs no `include`; a worker includes the module of its tasks.
    """
    settings = settings or get_settings()
    if settings.broker_url.startswith("sqla+sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = Celery("distillery", broker=settings.broker_url, include=list(include))
    app.conf.update(
        task_default_queue=settings.queue_name,
        task_queues=[Queue(name) for name in job_queues(settings.queue_name)],
        # Webhooks have a queue of their own, so they never wait behind a distillation job.
        task_routes={
            RUN_JOB_TASK: {"queue": settings.queue_name},
            SEND_WEBHOOK_TASK: {"queue": settings.webhook_queue_name},
        },
        # The database holds job state and results; the queue only carries job ids.
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        # A job is acknowledged after it ends, and redelivered if its worker dies mid-run.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        # Pool processes are kept: each real job runs in a fresh process of its own (worker.delivery),
        # so a stale or duplicate delivery costs one database update, not a process restart.
        worker_hijack_root_logger=False,
        # No remote control: see worker/cli.py:RECONNECTING, the flags every worker starts with.
        worker_enable_remote_control=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options(settings.broker_url, settings.visibility_timeout_seconds),
        task_publish_retry=True,
    )
    return app


def transport_options(broker_url: str, visibility_timeout: int) -> dict[str, int]:
    """Redis redelivers unacked jobs only after the visibility timeout, so it must outlast any job.

    The SQLAlchemy transport passes its options to `create_engine`, which accepts neither key; a job it
    loses with its worker is recovered by the reconciler instead.
    """
    if broker_url.startswith("sqla+"):
        return {}
    return {"visibility_timeout": visibility_timeout, "polling_interval": 1}


celery_app = make_celery()
