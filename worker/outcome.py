"""Recording how an attempt of a job ended, retried through a database blip for as long as the lease."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import is_database_unreachable, session_scope
from app.jobs.events import append_event
from app.jobs.models import JobStatus
from app.jobs.queue import publish_job
from app.jobs.schemas import JobError
from app.jobs.transitions import IllegalTransition, transition
from worker.reporter import JobReporter
from worker.transient import retry_database, transient_error

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
            with session_scope() as session:
                try:
                    transition(
                        session,
                        job_id=self.job_id,
                        target=target,
                        worker_id=self.worker_id,
                        values={
                            "finished_at": utcnow(),
                            "result": result,
                            "error": error.model_dump() if error is not None else None,
                        },
                    )
                except IllegalTransition as refused:
                    logger.warning(
                        "could not record %s for %s: it is %s", target, self.job_id, refused.current
                    )
                    return
                message = f"job {target}" + (f": {error.message}" if error else "")
                append_event(
                    session,
                    job_id=self.job_id,
                    type="status",
                    level="error" if error else "info",
                    message=message,
                    data={"status": target.value, **({"detail": detail} if detail else {})},
                )

        self._retrying(write)

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
        refused: list[str | None] = []

        def write() -> None:
            self.reporter.write_pending()
            refused.clear()
            with session_scope() as session:
                try:
                    transition(
                        session,
                        job_id=self.job_id,
                        target=JobStatus.QUEUED,
                        sources=[JobStatus.RUNNING],
                        worker_id=self.worker_id,
                        values={"queued_at": utcnow(), "worker_id": None},
                    )
                except IllegalTransition as illegal:
                    refused.append(illegal.current)
                    return
                append_event(
                    session,
                    job_id=self.job_id,
                    type="status",
                    level="warning",
                    message=(
                        f"attempt {attempt} hit a transient error ({stored.message}); "
                        f"queued again for attempt {attempt + 1} of {self.settings.max_attempts}"
                    ),
                    data={"error": stored.model_dump()},
                )

        if not self._retrying(write):
            return
        if refused:
            if refused[0] == JobStatus.CANCELLING:
                self.record(JobStatus.CANCELLED)
            else:
                logger.warning("could not requeue %s: it is %s", self.job_id, refused[0])
            return
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
