"""A job's attempt while it runs: its delivery counted, its claim, heartbeats, log and artifacts."""

import logging
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from app.core.base import utcnow
from app.core.config import Settings
from app.core.db import session_scope
from app.core.storage import ArtifactStore, open_store
from app.jobs.events import append_event
from app.jobs.lifecycle.records import (
    CheckpointSaved,
    ClaimedJob,
    LogLine,
    MetricsLine,
    Progress,
    Record,
    StoredArtifact,
)
from app.jobs.models import Artifact, Checkpoint, Job, JobStatus
from app.jobs.transitions import IllegalTransition, transition
from app.jobs.webhook_events import EventType, record_job_event

logger = logging.getLogger(__name__)
LIVE = [JobStatus.RUNNING.value, JobStatus.CANCELLING.value]
MEDIA_TYPES = {
    ".json": "application/json",
    ".png": "image/png",
    ".jsonl": "application/x-ndjson",
    ".gz": "application/gzip",
}


def record_delivery(*, job_id: str) -> str | None:
    """Count one delivery of the job's message; returns the job's status, None when there is no such job."""
    with session_scope() as session:
        status: str | None = session.scalar(
            update(Job)
            .where(Job.id == job_id)
            .values(deliveries=Job.deliveries + 1)
            .returning(Job.status)
            .execution_options(synchronize_session=False)
        )
        return status


def claim(*, job_id: str, worker_id: str) -> ClaimedJob | None:
    """Take a queued job for this worker; None when another worker has it or it is no longer queued."""
    with session_scope() as session:
        try:
            transition(
                session,
                job_id=job_id,
                target=JobStatus.RUNNING,
                sources=[JobStatus.QUEUED],
                values={
                    "worker_id": worker_id,
                    "heartbeat_at": utcnow(),
                    "started_at": utcnow(),
                    "attempts": Job.attempts + 1,
                },
            )
        except IllegalTransition as refused:
            logger.info("not running %s: it is %s", job_id, refused.current)
            return None
        job = session.get_one(Job, job_id, populate_existing=True)
        append_event(
            session,
            job_id=job_id,
            type="status",
            message=f"running on {worker_id} (attempt {job.attempts})",
            data={"status": JobStatus.RUNNING.value},
        )
        return ClaimedJob(id=job.id, tenant=job.tenant, spec=dict(job.spec), attempts=job.attempts)


def heartbeat(*, job_id: str, worker_id: str, progress: Progress | None = None) -> str | None:
    """Renew the worker's lease on a live job, storing `progress` with it; returns the job's status
    (`cancelling` asks the worker to stop), None when the job is no longer leased to this worker."""
    with session_scope() as session:
        status: str | None = session.scalar(
            update(Job)
            .where(Job.id == job_id, Job.worker_id == worker_id, Job.status.in_(LIVE))
            .values(heartbeat_at=utcnow(), **(asdict(progress) if progress is not None else {}))
            .returning(Job.status)
        )
        return status


def record_events(*, job_id: str, records: list[Record], settings: Settings) -> None:
    """Write a running job's log lines, metrics and checkpoints, in order, in one transaction."""
    store = open_store(settings)
    with session_scope() as session:
        for record in records:
            if isinstance(record, LogLine):
                append_event(session, job_id=job_id, message=record.message, level=record.level)
            elif isinstance(record, MetricsLine):
                _add_metrics(session, job_id=job_id, line=record)
            else:
                _add_checkpoint(session, job_id=job_id, checkpoint=record, store=store)


def _add_metrics(session: Session, *, job_id: str, line: MetricsLine) -> None:
    summary = ", ".join(f"{name} {value:.4g}" for name, value in line.metrics.items())
    append_event(
        session,
        job_id=job_id,
        type="metrics",
        message=f"{line.split} step {line.step}: {summary}",
        data={"split": line.split, "step": line.step, "epoch": line.epoch, "metrics": line.metrics},
    )


def _add_checkpoint(
    session: Session, *, job_id: str, checkpoint: CheckpointSaved, store: ArtifactStore
) -> None:
    # The engine keeps only the latest and the best checkpoints: forget rows whose folder is gone.
    for old in session.query(Checkpoint).filter(Checkpoint.job_id == job_id).all():
        if not store.exists(old.location):
            session.delete(old)
        elif checkpoint.is_best and old.is_best:
            old.is_best = False
    step, epoch, metrics = checkpoint.step, checkpoint.epoch, checkpoint.metrics
    session.add(
        Checkpoint(
            job_id=job_id,
            step=step,
            epoch=epoch,
            metrics=metrics,
            location=checkpoint.location,
            is_best=checkpoint.is_best,
        )
    )
    append_event(
        session,
        job_id=job_id,
        type="checkpoint",
        message=f"checkpoint at step {step}",
        data={"step": step, "epoch": epoch, "metrics": metrics, "is_best": checkpoint.is_best},
    )
    record_job_event(session, job_id=job_id, event_type=EventType.JOB_CHECKPOINT, data={"step": step})


def register_artifacts(*, job_id: str, artifacts: list[StoredArtifact]) -> None:
    """Record the job's stored files, replacing rows of the same names that an earlier attempt left."""
    with session_scope() as session:
        names = [artifact.name for artifact in artifacts]
        session.execute(delete(Artifact).where(Artifact.job_id == job_id, Artifact.name.in_(names)))
        for artifact in artifacts:
            session.add(
                Artifact(
                    job_id=job_id,
                    name=artifact.name,
                    bytes=artifact.bytes,
                    sha256=artifact.sha256,
                    location=artifact.location,
                    media_type=MEDIA_TYPES.get(Path(artifact.name).suffix, "application/octet-stream"),
                )
            )
