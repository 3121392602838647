"""Distillery's worker: the Celery app, its tasks, and the distillation engine they run.

`celery -A worker worker` finds the app as `worker.app`. It is built on first access, so importing the
engine (`worker.engine`) never imports Celery or reads the service settings.
"""

from typing import Any

__all__ = ["app", "celery_app"]


def __getattr__(name: str) -> Any:
    if name in ("app", "celery_app"):
        from worker.celery_app import celery_app

        return celery_app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
