"""Distillery's worker: the Celery app, its tasks, and the distillation engine they run."""

from worker.celery_app import celery_app

app = celery_app

__all__ = ["app", "celery_app"]
