"""A pool process that ends by SIGTERM is the worker's own shutdown at work, not an error.

Stopping a worker signals its whole process group, so that a job's process stops with it; the pool then
reports each of its processes as "exited with signal 15 (SIGTERM)" at ERROR level. That line is logged
at INFO instead, so a clean stop (Ctrl-C on `distillery up`) prints no error.
"""

import logging

POOL_LOGGER = "multiprocessing"  # the logger of Celery's process pool (billiard)
TERMINATED = "SIGTERM"


class PoolExitBySigterm(logging.Filter):
    """Lowers the pool's report of a process ended by SIGTERM to INFO, and drops it below that level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or "exited with" not in str(record.msg):
            return True
        if TERMINATED not in " ".join(str(arg) for arg in record.args or ()):
            return True
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def install() -> None:
    """Add the filter to the pool's logger, whatever handlers Celery gives it later."""
    pool_logger = logging.getLogger(POOL_LOGGER)
    if not any(isinstance(existing, PoolExitBySigterm) for existing in pool_logger.filters):
        pool_logger.addFilter(PoolExitBySigterm())
