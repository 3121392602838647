"""The lifecycle seam: every write a worker makes about a job, and the reads it needs to run one.

Workers (`worker/`) reach the service's tables through these functions only; an import-linter contract
in pyproject.toml holds them to it. Every function takes keyword arguments and plain data (ids, dicts,
`Settings`, the frozen records below) and returns plain data, so that a reporter in another process or
on another machine calls the same functions. Each opens and commits its own transaction; retrying
through a database outage is the caller's policy.
"""

from app.jobs.lifecycle.claiming import adopt, claim_next
from app.jobs.lifecycle.ending import finish, requeue
from app.jobs.lifecycle.inputs import file_path, model_dir
from app.jobs.lifecycle.pruning import prune_events
from app.jobs.lifecycle.records import (
    CheckpointSaved,
    ClaimedJob,
    Level,
    LogLine,
    MetricsLine,
    Progress,
    Record,
    StoredArtifact,
)
from app.jobs.lifecycle.recovery import recover_orphans, resend_lost
from app.jobs.lifecycle.running import claim, heartbeat, record_delivery, record_events, register_artifacts
from app.jobs.lifecycle.siblings import teacher_output_readers
from app.jobs.lifecycle.waiting import record_waiting
from app.jobs.model_refs import ModelLocation, ModelRefError, StoredModel
from app.jobs.models import JobStatus
from app.jobs.queue import publish_job
from app.jobs.schemas import JobError

__all__ = [
    "CheckpointSaved",
    "ClaimedJob",
    "JobError",
    "JobStatus",
    "Level",
    "LogLine",
    "MetricsLine",
    "ModelLocation",
    "ModelRefError",
    "Progress",
    "Record",
    "StoredArtifact",
    "StoredModel",
    "adopt",
    "claim",
    "claim_next",
    "file_path",
    "finish",
    "heartbeat",
    "model_dir",
    "prune_events",
    "publish_job",
    "record_delivery",
    "record_events",
    "record_waiting",
    "recover_orphans",
    "register_artifacts",
    "requeue",
    "resend_lost",
    "teacher_output_readers",
]
