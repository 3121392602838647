"""One warning per outage of a dependency, however many operations fail while it lasts."""

import logging
import threading
import time


class OutageLog:
    """Logs an outage once when it starts and once when the dependency answers again.

    Flapping (failures mixed with successes, as when a pool is exhausted) warns at most once every
    `quiet_seconds`; the failures in between are counted and reported with the recovery.
    """

    def __init__(self, logger: logging.Logger, *, what: str, quiet_seconds: float = 60.0) -> None:
        self.logger, self.what, self.quiet_seconds = logger, what, quiet_seconds
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._warned_at: float | None = None
        self._warned = False
        self._failures = 0

    @property
    def is_down(self) -> bool:
        """Whether the last operation failed and none has succeeded since."""
        return self._down_since is not None

    def failed(self, error: BaseException) -> None:
        """Count a failed operation; the first of an outage logs a warning."""
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            if self._down_since is not None:
                return
            self._down_since = now
            self._warned = self._warned_at is None or now - self._warned_at >= self.quiet_seconds
            if self._warned:
                self._warned_at = now
        if self._warned:
            self.logger.warning("%s is unreachable: %s", self.what, _one_line(error))

    def answered(self) -> None:
        """Note a successful operation; ends the outage, if there was one."""
        if self._down_since is None:  # the common case, without taking the lock
            return
        with self._lock:
            if self._down_since is None:
                return
            seconds, failures, warned = time.monotonic() - self._down_since, self._failures, self._warned
            self._down_since, self._failures = None, 0
        if warned:
            self.logger.info(
                "%s answers again after %.1fs (%d operation(s) failed)", self.what, seconds, failures
            )


def _one_line(error: BaseException) -> str:
    """The error's type and the first line of its message, without the SQL or a traceback."""
    message = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {message[0] if message else ''}"
