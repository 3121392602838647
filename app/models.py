"""Every table, imported in one place for Alembic and for create-all in tests."""

from app.auth.models import ApiKey
from app.core.base import Base
from app.files.models import File
from app.jobs.models import Artifact, Checkpoint, Job, JobEvent
from app.sweeps.models import Sweep
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.workers.models import Worker

__all__ = [
    "ApiKey",
    "Artifact",
    "Base",
    "Checkpoint",
    "File",
    "Job",
    "JobEvent",
    "Sweep",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Worker",
]
