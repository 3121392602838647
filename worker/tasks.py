"""Celery tasks: thin wrappers that hand a job id to the delivery module."""

import logging

from worker import signals  # noqa: F401  (connects the worker's start-up hooks)
from worker.celery_app import RUN_JOB_TASK, celery_app
from worker.delivery import handle_delivery

logger = logging.getLogger(__name__)


@celery_app.task(name=RUN_JOB_TASK, acks_late=True, ignore_result=True)
def run_job_task(job_id: str) -> None:
    """Run one distillation job; a delivery of a job that is not queued is counted and dropped."""
    handle_delivery(job_id)
