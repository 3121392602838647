"""The engine's callbacks, written to the database: progress, metrics, checkpoints, heartbeat and cancel."""

import logging
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import update

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import session_scope
from app.core.storage import ArtifactStore
from app.jobs.events import append_event
from app.jobs.models import Checkpoint, Job, JobStatus
from worker.engine.callbacks import Callbacks

logger = logging.getLogger(__name__)
PROGRESS_EVERY_SECONDS = 2.0
CANCEL_CHECK_EVERY_SECONDS = 1.0
LIVE = [JobStatus.RUNNING.value, JobStatus.CANCELLING.value]


class JobReporter(Callbacks):
    """Reports one running job; also keeps its lease alive from a background thread."""

    def __init__(self, *, job_id: str, worker_id: str, settings: Settings, store: ArtifactStore) -> None:
        self.job_id, self.worker_id, self.settings, self.store = job_id, worker_id, settings, store
        self.cancel_requested = False
        self.lease_lost = False
        self._started = time.monotonic()
        self._last_progress = 0.0
        self._last_cancel_check = 0.0
        self._stopped = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> "JobReporter":
        self._heartbeat.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._heartbeat.join(timeout=5)

    def on_message(self, message: str, level: Literal["info", "warning", "error"] = "info") -> None:
        with session_scope() as session:
            append_event(session, job_id=self.job_id, message=message, level=level)

    def on_progress(self, *, step: int, total_steps: int, epoch: float) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY_SECONDS and step < total_steps:
            return
        self._last_progress = now
        elapsed = now - self._started
        eta = utcnow() + timedelta(seconds=elapsed / step * (total_steps - step)) if step else None
        self._update(step=step, total_steps=total_steps, epoch=epoch, estimated_finish_at=eta)

    def on_metrics(
        self, *, step: int, epoch: float, split: Literal["train", "eval"], metrics: dict[str, float]
    ) -> None:
        summary = ", ".join(f"{name} {value:.4g}" for name, value in metrics.items())
        with session_scope() as session:
            append_event(
                session,
                job_id=self.job_id,
                type="metrics",
                message=f"{split} step {step}: {summary}",
                data={"split": split, "step": step, "epoch": epoch, "metrics": metrics},
            )

    def on_checkpoint(
        self, *, step: int, epoch: float, path: Path, metrics: dict[str, Any], is_best: bool
    ) -> None:
        location = str(path.resolve().relative_to(self.store.root.resolve()))
        with session_scope() as session:
            # The engine keeps only the latest and the best checkpoints: forget rows whose folder is gone.
            for old in session.query(Checkpoint).filter(Checkpoint.job_id == self.job_id).all():
                if not self.store.path(old.location).exists():
                    session.delete(old)
                elif is_best and old.is_best:
                    old.is_best = False
            session.add(
                Checkpoint(
                    job_id=self.job_id,
                    step=step,
                    epoch=epoch,
                    metrics=metrics,
                    location=location,
                    is_best=is_best,
                )
            )
            append_event(
                session,
                job_id=self.job_id,
                type="checkpoint",
                message=f"checkpoint at step {step}",
                data={"step": step, "epoch": epoch, "metrics": metrics, "is_best": is_best},
            )

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now - self._last_cancel_check >= CANCEL_CHECK_EVERY_SECONDS:
            self._last_cancel_check = now
            self._update()
        return self.cancel_requested or self.lease_lost

    def _update(self, **values: Any) -> None:
        """Refresh the heartbeat (and any progress values) and learn whether a cancel was requested."""
        with session_scope() as session:
            status = session.scalar(
                update(Job)
                .where(Job.id == self.job_id, Job.worker_id == self.worker_id, Job.status.in_(LIVE))
                .values(heartbeat_at=utcnow(), **values)
                .returning(Job.status)
            )
        if status is None:
            self.lease_lost = True
            logger.warning("job %s is no longer leased to %s", self.job_id, self.worker_id)
        elif status == JobStatus.CANCELLING:
            self.cancel_requested = True

    def _beat(self) -> None:
        while not self._stopped.wait(self.settings.heartbeat_seconds):
            try:
                self._update()
            except Exception:
                logger.exception("heartbeat of job %s failed", self.job_id)
