"""The worker's Celery app: the service's configuration plus the job task; it never imports torch."""

from app.core.celery import RUN_JOB_TASK, make_celery

celery_app = make_celery(include=["worker.tasks"])

__all__ = ["RUN_JOB_TASK", "celery_app"]
