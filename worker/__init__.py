"""Distillery's worker: the Celery app and its task, which runs the engine on one job at a time.

`celery -A worker worker` finds the app as `worker.app`, built on first access.
"""

from typing import Any

__all__ = ["app", "celery_app"]


def __getattr__(name: str) -> Any:
    if name in ("app", "celery_app"):
        from worker.celery_app import celery_app

        return celery_app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
