"""Log lines as text or as JSON objects, carrying the request id (API) and the job id (worker).

The ids live in context variables, set by the request-id middleware and around a job's work; a filter
on the handlers copies them onto every record, so a line logged by any library inside a request or a
job carries them.
"""

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from app.core.config import Settings

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
# uvicorn attaches an ANSI-coloured copy of some messages; JSON lines keep the plain one.
NOT_LOGGED = [*RESERVED_ATTRS, "color_message", "taskName"]
# uvicorn's loggers have handlers of their own; in JSON mode their lines go through the root's instead.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class ContextFields(logging.Filter):
    """Copies the current request id and job id onto a record, when there are any."""

    def __init__(self, *, fixed_job_id: str | None = None) -> None:
        super().__init__()
        self.fixed_job_id = fixed_job_id

    def filter(self, record: logging.LogRecord) -> bool:
        current_request = request_id.get()
        if current_request is not None:
            record.request_id = current_request
        current_job = job_id.get() or self.fixed_job_id
        if current_job is not None:
            record.job_id = current_job
        return True


class JsonLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler JSON mode installs on the root logger: one JSON object per line on stderr."""

    def __init__(self, *, fixed_job_id: str | None = None) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(json_formatter())
        self.addFilter(ContextFields(fixed_job_id=fixed_job_id))


def json_formatter() -> logging.Formatter:
    """`{"time", "level", "logger", "message", ...}`, plus any extra fields of the record."""
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        reserved_attrs=NOT_LOGGED,
        timestamp="time",
    )


def configure_api_logging(settings: Settings) -> None:
    """JSON mode: every line of the API process, uvicorn's included, is one JSON object; text mode: as is."""
    if settings.log_format != "json":
        return
    root = logging.getLogger()
    if not any(isinstance(handler, JsonLogHandler) for handler in root.handlers):
        root.addHandler(JsonLogHandler())
    root.setLevel(logging.INFO)
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers = []
        server_logger.propagate = True


def use_json_lines(logger: logging.Logger) -> None:
    """Turn the handlers a framework (Celery) gave a logger into JSON ones with the context fields."""
    for handler in logger.handlers:
        handler.setFormatter(json_formatter())
        if not any(isinstance(existing, ContextFields) for existing in handler.filters):
            handler.addFilter(ContextFields())


def configure_job_process_logging(settings: Settings, job: str) -> None:
    """The process that runs one job: every line, from any thread, carries the job id."""
    if settings.log_format == "json":
        root = logging.getLogger()
        root.addHandler(JsonLogHandler(fixed_job_id=job))
        root.setLevel(logging.INFO)
        return
    text_format = f"[%(asctime)s: %(levelname)s/{job}] %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=text_format)
