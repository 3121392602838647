"""Failures of the infrastructure that pass by themselves: which they are, and retrying through them.

A transient failure is retried where it happens for a short budget; one that escapes a run requeues the
job for another attempt instead of failing it. Anything else (a user error, a bug, a full disk) is not.
"""

import errno
import logging
from collections.abc import Callable
from typing import TypeVar

from kombu.exceptions import OperationalError as BrokerUnreachable
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential

from app.core.db import is_database_unreachable
from app.core.storage import StoreUnavailable
from app.jobs.lifecycle import JobError
from worker.group_failure import ClusterUnavailable, GroupFailed

logger = logging.getLogger(__name__)
T = TypeVar("T")

# A network file system that drops out for a moment; a full disk, a permission or a missing file stay.
TRANSIENT_STORAGE_ERRNOS = frozenset(
    {
        errno.ESTALE,
        errno.ETIMEDOUT,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.ENOTCONN,
        errno.ECONNRESET,
        errno.ECONNABORTED,
    }
)


def transient_code(error: BaseException) -> str | None:
    """The error code of a transient failure (`database_unavailable`, ...), or None when it is not one."""
    if is_database_unreachable(error):
        return "database_unavailable"
    if isinstance(error, BrokerUnreachable):
        return "broker_unavailable"
    if isinstance(error, StoreUnavailable) or (
        isinstance(error, OSError) and error.errno in TRANSIENT_STORAGE_ERRNOS
    ):
        return "storage_unavailable"
    if isinstance(error, GroupFailed):
        return "process_group_failed"
    if isinstance(error, ClusterUnavailable):
        return "cluster_unavailable"
    return None


def transient_error(error: BaseException) -> JobError:
    """A job's stored error for a transient failure: a system error another attempt may not meet."""
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return JobError(
        code=transient_code(error) or "internal_error",
        message=f"{type(error).__name__}: {lines[0] if lines else ''}",
        type="system",
        retryable=True,
    )


def retry_database(action: Callable[[], T], *, budget_seconds: float, what: str) -> T:
    """Run `action`, retrying with backoff while the database is unreachable, for up to `budget_seconds`.

    The last error is raised when the budget runs out; any other error is raised at once.
    """
    return _retrying(
        action, is_database_unreachable, "the database", budget_seconds=budget_seconds, what=what
    )


def retry_store(action: Callable[[], T], *, budget_seconds: float, what: str) -> T:
    """Run `action`, retrying with backoff while the object store is unavailable, for up to `budget_seconds`.

    Each try already has the store client's own retries; the last StoreUnavailable is raised at the end.
    """

    def unavailable(error: BaseException) -> bool:
        return isinstance(error, StoreUnavailable)

    return _retrying(action, unavailable, "the object store", budget_seconds=budget_seconds, what=what)


def _retrying(
    action: Callable[[], T],
    is_transient: Callable[[BaseException], bool],
    service: str,
    *,
    budget_seconds: float,
    what: str,
) -> T:
    def note_first_retry(state: RetryCallState) -> None:
        if state.attempt_number == 1 and state.outcome is not None:
            error = state.outcome.exception()
            logger.warning("%s: %s is unreachable (%s); retrying", what, service, type(error).__name__)

    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_delay(budget_seconds),
        wait=wait_exponential(multiplier=0.25, max=5),
        before_sleep=note_first_retry,
        reraise=True,
    )
    return retrying(action)
