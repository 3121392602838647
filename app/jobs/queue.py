"""Sending a job to the workers: only its id travels; the database holds everything else.

A job goes to the queue of the accelerator it asks for (`app/core/celery.py:job_queue`), which only the
workers that have it consume; the message is a claim ticket, the database decides which job it runs.
"""

import logging

from celery import Celery
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.core.celery import RUN_JOB_TASK, celery_app, job_queue
from app.core.config import get_settings
from app.core.db import session_scope
from app.jobs.models import Job

logger = logging.getLogger(__name__)


def publish_job(job_id: str, *, app: Celery = celery_app) -> None:
    """Put a committed job on its queue and record the publish; raises when the broker is unreachable."""
    with session_scope() as session:
        accelerator = session.scalar(select(Job.accelerator).where(Job.id == job_id)) or "auto"
    message_id = send_job(job_id, app=app, accelerator=accelerator)
    with session_scope() as session:
        record_publish(session, job_id=job_id, message_id=message_id)
    logger.info("published job %s as message %s", job_id, message_id)


def send_job(job_id: str, *, app: Celery = celery_app, accelerator: str = "auto") -> str:
    """Put the job's id on its accelerator's queue; returns the message id (the task id in its headers)."""
    queue = job_queue(get_settings().queue_name, accelerator)
    result = app.send_task(RUN_JOB_TASK, args=[job_id], queue=queue)
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
