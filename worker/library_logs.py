"""The model library's own messages in a job's log, not on the worker's console.

transformers prints a progress bar for every model it loads and a table of the weights it did not find
(a new classifier head, say). On a console that runs several jobs they are noise; in the job's log,
beside the lines of the run that caused them, they explain what the student started from.
"""

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from engine.callbacks import Callbacks

Level = Literal["info", "warning", "error"]
LIBRARY_LOGGERS = ("transformers",)
# Terminal colour codes that the library puts in its tables.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class JobLogHandler(logging.Handler):
    """Writes each record as a line of the job's log, at its level (warning at most)."""

    def __init__(self, callbacks: Callbacks) -> None:
        super().__init__(level=logging.WARNING)
        self.callbacks = callbacks

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = ANSI_ESCAPE.sub("", record.getMessage()).strip()
            level: Level = "error" if record.levelno >= logging.ERROR else "warning"
            self.callbacks.on_message(message, "info" if "LOAD REPORT" in message else level)
        except Exception:  # a log line must never stop the job
            self.handleError(record)


@contextmanager
def library_messages_in_job_log(callbacks: Callbacks) -> Iterator[None]:
    """While the job runs: no progress bars, and the library's warnings in the job's log only."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_default_handler()
    handler = JobLogHandler(callbacks)
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    for library_logger in loggers:
        library_logger.addHandler(handler)
    try:
        yield
    finally:
        for library_logger in loggers:
            library_logger.removeHandler(handler)
        transformers.utils.logging.enable_default_handler()
