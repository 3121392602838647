"""The engine's callbacks, written to the database: progress, metrics, checkpoints, heartbeat and cancel.

A short database outage does not stop training. Log lines, metrics and checkpoint rows go through an
in-order buffer that is written as soon as the database answers; progress, heartbeats and cancel checks
are tried again at their next tick. Once no heartbeat could be stored for longer than the lease, the
reconciler may have given the job to another worker, so the run stops.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import is_database_unreachable
from app.core.outage import OutageLog
from app.jobs.lifecycle import (
    CheckpointSaved,
    JobStatus,
    Level,
    LogLine,
    MetricsLine,
    Progress,
    Record,
    heartbeat,
    record_events,
)
from app.sweeps.lifecycle import trial_evaluated
from engine.callbacks import Callbacks
from worker.job_folder import JobFolder

logger = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 2.0
CANCEL_CHECK_EVERY_SECONDS = 1.0
RETRY_EVERY_SECONDS = 1.0


class JobReporter(Callbacks):
    """Reports one running job; also keeps its lease alive from a background thread."""

    def __init__(
        self,
        *,
        job_id: str,
        worker_id: str,
        settings: Settings,
        folder: JobFolder,
        stops_on_cancel: bool = True,
    ) -> None:
        """`stops_on_cancel` False: a cancel is left to whoever stops this process (Ray's stop_job)."""
        self.job_id, self.worker_id, self.settings, self.folder = job_id, worker_id, settings, folder
        self.stops_on_cancel = stops_on_cancel
        self.cancel_requested = False
        self.lease_lost = False
        self._started = time.monotonic()
        self._last_progress = 0.0
        self._last_cancel_check = 0.0
        self._last_heartbeat = time.monotonic()  # the claim stored one
        self._unsent_progress: Progress | None = None
        self._pending: deque[Record] = deque()
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._outage = OutageLog(logger, what=f"the database (job {job_id})")
        self._next_try = 0.0
        self._stopped = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> "JobReporter":
        self._heartbeat.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._heartbeat.join(timeout=5)

    def on_message(self, message: str, level: Level = "info") -> None:
        self._record(LogLine(message=message, level=level))

    def on_progress(self, *, step: int, total_steps: int, epoch: float) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY_SECONDS and step < total_steps:
            return
        self._last_progress = now
        elapsed = now - self._started
        eta = utcnow() + timedelta(seconds=elapsed / step * (total_steps - step)) if step else None
        self._unsent_progress = Progress(
            step=step, total_steps=total_steps, epoch=epoch, estimated_finish_at=eta
        )
        self._try(self._update)

    def on_metrics(
        self, *, step: int, epoch: float, split: Literal["train", "eval"], metrics: dict[str, float]
    ) -> None:
        # Written later if the database is away: a copy, since the engine may reuse the dict.
        self._record(MetricsLine(step=step, epoch=epoch, split=split, metrics=dict(metrics)))

    def on_checkpoint(
        self, *, step: int, epoch: float, path: Path, metrics: dict[str, Any], is_best: bool
    ) -> None:
        # Stored whole before its row is written: a recorded checkpoint is always one a resume can use.
        location = self.folder.store_checkpoint(path)
        self._record(
            CheckpointSaved(step=step, epoch=epoch, location=location, metrics=dict(metrics), is_best=is_best)
        )

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self._last_cancel_check >= CANCEL_CHECK_EVERY_SECONDS:
            self._last_cancel_check = now
            self._try(self._sync)
            self._check_lease()
        return self.cancel_requested or self.lease_lost

    def write_pending(self) -> None:
        """Write the buffered records and any unsent progress; raises while the database is unreachable."""
        self._write_buffer()
        if self._unsent_progress is not None:
            self._update()

    def _record(self, record: Record) -> None:
        """Buffer a record that must not be lost, then try to write the buffer."""
        with self._pending_lock:
            self._pending.append(record)
        self._try(lambda: self._write_buffer(wait=False))

    def _sync(self) -> None:
        """Write the buffer, then refresh the heartbeat."""
        self._write_buffer(wait=False)
        self._update()

    def _write_buffer(self, *, wait: bool = True) -> None:
        """Write the buffered records, oldest first, in one transaction; they stay buffered if it fails."""
        if not self._write_lock.acquire(blocking=wait):
            return  # the other thread is writing them
        try:
            with self._pending_lock:
                batch = list(self._pending)
            if not batch:
                return
            record_events(job_id=self.job_id, records=batch, settings=self.settings)
            with self._pending_lock:
                for _ in batch:
                    self._pending.popleft()
            evaluated = any(isinstance(record, MetricsLine) and record.split == "eval" for record in batch)
            # A trial of a sweep: its pruner may stop it, as a cancel would.
            if evaluated and trial_evaluated(job_id=self.job_id, settings=self.settings):
                self.cancel_requested = self.cancel_requested or self.stops_on_cancel
        finally:
            self._write_lock.release()

    def _try(self, action: Callable[[], None]) -> None:
        """Run a database action now, unless the database is down and was tried a moment ago."""
        now = time.monotonic()
        if self._outage.is_down and now < self._next_try:
            return
        try:
            action()
        except Exception as error:
            if not is_database_unreachable(error):
                raise
            self._next_try = now + RETRY_EVERY_SECONDS
            self._outage.failed(error)
        else:
            self._outage.answered()

    def _update(self) -> None:
        """Refresh the heartbeat (with any unsent progress) and learn whether a cancel was requested."""
        progress = self._unsent_progress
        status = heartbeat(job_id=self.job_id, worker_id=self.worker_id, progress=progress)
        if self._unsent_progress is progress:
            self._unsent_progress = None
        if status is None:
            self.lease_lost = True
            logger.warning("job %s is no longer leased to %s", self.job_id, self.worker_id)
            return
        self._last_heartbeat = time.monotonic()
        if status == JobStatus.CANCELLING and self.stops_on_cancel:
            self.cancel_requested = True

    def _check_lease(self) -> None:
        """Stop once no heartbeat was stored for longer than the lease: the job may be someone else's."""
        silent = time.monotonic() - self._last_heartbeat
        if not self.lease_lost and silent > self.settings.lease_seconds:
            self.lease_lost = True
            logger.warning(
                "job %s: no heartbeat stored for %.0fs, longer than the lease; stopping it",
                self.job_id,
                silent,
            )

    def _beat(self) -> None:
        while not self._stopped.wait(self.settings.heartbeat_seconds):
            try:
                self._try(self._sync)
                self._check_lease()
            except Exception:
                logger.exception("heartbeat of job %s failed", self.job_id)
