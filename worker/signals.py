"""Worker hooks: fresh database connections per process, the worker's registry entry and its heartbeat,
the reconciler thread, and the log format."""

import logging
from contextvars import Token
from typing import Any

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_shutdown,
)

from app.core.celery import RUN_JOB_TASK
from app.core.config import get_settings
from app.core.db import get_engine
from app.core.logs import job_id, use_json_lines
from app.sweeps.lifecycle import forget_connections
from worker import pool_exits, registration  # noqa: F401  (registers the worker and heartbeats its capacity)
from worker.periodic import run_while_worker_runs
from worker.reconciler import reconciler

logger = logging.getLogger(__name__)
_job_tokens: dict[str, Token[str | None]] = {}


@worker_process_init.connect
def _reset_connections(**_: Any) -> None:
    """A forked child must not share the parent's database connections."""
    get_engine().dispose(close=False)
    forget_connections()  # the sweeps' study tables have a pool of their own


pool_exits.install()
# Re-publish lost jobs and recover orphaned ones while the worker runs.
run_while_worker_runs(lambda: reconciler(get_settings()))


@worker_shutdown.connect
def _close_connections(**_: Any) -> None:
    get_engine().dispose()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_format(logger: logging.Logger, **_: Any) -> None:
    """With DISTILLERY_LOG_FORMAT=json, Celery's handlers write one JSON object per line."""
    if get_settings().log_format == "json":
        use_json_lines(logger)


@task_prerun.connect
def _enter_job(sender: Any, task_id: str, args: tuple[Any, ...] | None = None, **_: Any) -> None:
    """Every line logged while the job task handles a job, Celery's own included, carries the job's id."""
    if getattr(sender, "name", None) == RUN_JOB_TASK and args:
        _job_tokens[task_id] = job_id.set(str(args[0]))


@task_postrun.connect
def _leave_job(task_id: str, **_: Any) -> None:
    token = _job_tokens.pop(task_id, None)
    if token is not None:
        job_id.reset(token)
