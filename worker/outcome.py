"""Recording how an attempt of a job ended, retried through a database blip for as long as the lease."""

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.core.config import Settings
from app.core.db import is_database_unreachable
from app.jobs.lifecycle import JobError, JobStatus, finish, publish_job, requeue
from app.sweeps.lifecycle import job_ended
from engine.errors import UserError
from worker.reporter import JobReporter
from worker.transient import retry_database, transient_code, transient_error

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """Writes one attempt's end: the job's buffered log first, then its new status, as compare-and-sets.

    Recording retries for up to the lease: past it the reconciler treats the job as orphaned, and the
    compare-and-set refuses a late write once it has.
    """

    job_id: str
    worker_id: str
    settings: Settings
    reporter: JobReporter

    def record(
        self,
        target: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: JobError | None = None,
        detail: str | None = None,
    ) -> None:
        """End the job in `target`; a job cancelled too late still ends succeeded."""

        def write() -> None:
            self.reporter.write_pending()
            finish(
                job_id=self.job_id,
                worker_id=self.worker_id,
                status=target,
                result=result,
                error=error,
                detail=detail,
            )

        if self._retrying(write):
            job_ended(job_id=self.job_id, settings=self.settings)

    @staticmethod
    def is_unexpected(error: Exception) -> bool:
        """Neither the user's error nor a transient one: a bug, or in a process group, a peer's death."""
        return not isinstance(error, UserError) and transient_code(error) is None

    def failed(self, error: Exception, *, attempt: int) -> None:
        """End an attempt that raised: a user error or a bug fails the job, a transient error retries it."""
        if isinstance(error, UserError):
            user_error = JobError(code=error.code, message=error.message, param=error.param, type="user")
            self.record(JobStatus.FAILED, error=user_error)
        elif not self.is_unexpected(error):
            self.retry_later(error, attempt=attempt)
        else:
            logger.error("job %s failed", self.job_id, exc_info=error)
            message = f"{type(error).__name__}: {error}"
            self.record(
                JobStatus.FAILED,
                error=JobError(code="internal_error", message=message, type="system"),
                detail="".join(traceback.format_exception(error, limit=5)),
            )

    def retry_later(self, error: BaseException, *, attempt: int) -> None:
        """After a transient failure, queue the job for another attempt, or fail it once none is left."""
        stored = transient_error(error)
        if attempt >= self.settings.max_attempts:
            logger.warning(
                "job %s: attempt %d failed on a transient error, the last allowed", self.job_id, attempt
            )
            self.record(JobStatus.FAILED, error=stored)
            return
        logger.warning(
            "job %s: attempt %d failed on a transient error (%s); requeueing it",
            self.job_id,
            attempt,
            stored.message,
        )
        status: list[str | None] = []

        def write() -> None:
            self.reporter.write_pending()
            status[:] = [
                requeue(
                    job_id=self.job_id,
                    worker_id=self.worker_id,
                    attempt=attempt,
                    max_attempts=self.settings.max_attempts,
                    error=stored,
                )
            ]

        if not self._retrying(write):
            return
        if status[0] == JobStatus.CANCELLING:
            self.record(JobStatus.CANCELLED)
        elif status[0] != JobStatus.QUEUED:
            logger.warning("could not requeue %s: it is %s", self.job_id, status[0])
        else:
            self._publish()

    def _publish(self) -> None:
        try:
            publish_job(self.job_id)
        except Exception as unsent:
            # The job is stored as queued; the reconciler sends it again once the broker is back.
            logger.warning("could not publish job %s again (%s); it stays queued", self.job_id, unsent)

    def _retrying(self, write: Callable[[], None]) -> bool:
        """Run `write` through a database blip; False when the database stayed away for the whole lease."""
        try:
            retry_database(
                write, budget_seconds=self.settings.lease_seconds, what=f"recording job {self.job_id}"
            )
        except Exception as error:
            if not is_database_unreachable(error):
                raise
            logger.warning(
                "could not record the end of job %s; the reconciler will retry it after its lease",
                self.job_id,
            )
            return False
        return True
