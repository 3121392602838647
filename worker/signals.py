"""Worker start-up hooks: fresh database connections per process and the reconciler thread."""

import logging
from typing import Any

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from app.core.config import get_settings
from app.core.db import get_engine
from worker.reconciler import Reconciler

logger = logging.getLogger(__name__)
_reconciler: Reconciler | None = None


@worker_process_init.connect
def _reset_connections(**_: Any) -> None:
    """A forked child must not share the parent's database connections."""
    get_engine().dispose(close=False)


@worker_ready.connect
def _start_reconciler(**_: Any) -> None:
    """Re-publish lost jobs and recover orphaned ones while the worker runs."""
    global _reconciler
    _reconciler = Reconciler(get_settings())
    _reconciler.start()


@worker_shutdown.connect
def _stop_reconciler(**_: Any) -> None:
    if _reconciler is not None:
        _reconciler.stop()
    get_engine().dispose()
