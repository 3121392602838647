"""Celery tasks: thin wrappers that hand a job id to the execution module."""

import logging
import os
import socket

from worker import signals  # noqa: F401  (connects the worker's start-up hooks)
from worker.celery_app import RUN_JOB_TASK, celery_app

logger = logging.getLogger(__name__)


@celery_app.task(name=RUN_JOB_TASK, acks_late=True, ignore_result=True)
def run_job_task(job_id: str) -> None:
    """Run one distillation job; a duplicate delivery of a job already taken does nothing."""
    # Imported here so the parent process never loads torch (nor initialises CUDA) before forking.
    from worker.execution import execute_job

    execute_job(job_id, worker_id=f"{socket.gethostname()}:{os.getpid()}")
