"""Sending a job to the workers: only its id travels; the database holds everything else."""

import logging

from celery import Celery
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.core.celery import RUN_JOB_TASK, celery_app
from app.core.config import get_settings
from app.core.db import session_scope
from app.jobs.models import Job

logger = logging.getLogger(__name__)


def publish_job(job_id: str, *, app: Celery = celery_app) -> None:
    """Put a committed job on the queue and record the publish; raises when the broker is unreachable."""
    message_id = send_job(job_id, app=app)
    with session_scope() as session:
        record_publish(session, job_id=job_id, message_id=message_id)
    logger.info("published job %s as message %s", job_id, message_id)


def send_job(job_id: str, *, app: Celery = celery_app) -> str:
    """Put the job's id on the queue; returns the message id (the task id in its headers)."""
    result = app.send_task(RUN_JOB_TASK, args=[job_id], queue=get_settings().queue_name)
    message_id: str = result.id
    return message_id


def record_publish(session: Session, *, job_id: str, message_id: str) -> None:
    """Remember when the job was last sent and as which message, so only lost messages are re-sent."""
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(published_at=utcnow(), publish_id=message_id)
        .execution_options(synchronize_session=False)
    )
