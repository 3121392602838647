"""Sending a job to the workers: only its id travels; the database holds everything else."""

import logging

from app.core.config import get_settings
from worker.celery_app import RUN_JOB_TASK, celery_app

logger = logging.getLogger(__name__)


def publish_job(job_id: str) -> None:
    """Put a committed job on the queue; raises when the broker is unreachable."""
    celery_app.send_task(RUN_JOB_TASK, args=[job_id], queue=get_settings().queue_name)
    logger.info("published job %s", job_id)
