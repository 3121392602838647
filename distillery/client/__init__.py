"""The Python client of the Distillery API."""

from distillery.client.client import (
    DEFAULT_URL,
    STUDENT_ARCHIVE,
    SWEEP_TERMINAL_STATUSES,
    TERMINAL_STATUSES,
    DistilleryClient,
)
from distillery.client.errors import (
    ApiError,
    DistilleryError,
    JobWaitTimeoutError,
    RequestTimeoutError,
    ServerUnreachableError,
    StoreUnreachableError,
    SweepWaitTimeoutError,
    UnsafeArchiveError,
)
from distillery.client.event_stream import StreamUnavailableError

__all__ = [
    "DEFAULT_URL",
    "STUDENT_ARCHIVE",
    "SWEEP_TERMINAL_STATUSES",
    "TERMINAL_STATUSES",
    "ApiError",
    "DistilleryClient",
    "DistilleryError",
    "JobWaitTimeoutError",
    "RequestTimeoutError",
    "ServerUnreachableError",
    "StoreUnreachableError",
    "StreamUnavailableError",
    "SweepWaitTimeoutError",
    "UnsafeArchiveError",
]
