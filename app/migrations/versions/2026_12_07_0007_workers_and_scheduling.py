"""Scheduling: the workers registry, what a queued job needs (denormalised from its spec), where a
running job runs, why a queued one waits, and per-key limits on a tenant's running jobs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
PRIORITY_RANKS = {"low": 0, "normal": 1, "high": 2}


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("accelerator", sa.String(8), nullable=False),
        sa.Column("accelerator_model", sa.String(200), nullable=True),
        sa.Column("devices", sa.Integer(), nullable=False),
        sa.Column("device_memory_gb", sa.Double(), nullable=True),
        sa.Column("host_memory_gb", sa.Double(), nullable=True),
        sa.Column("disk_free_gb", sa.Double(), nullable=True),
        sa.Column("versions", JSON, nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_index(op.f("ix_workers_heartbeat_at"), "workers", ["heartbeat_at"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("priority_rank", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("accelerator", sa.String(8), server_default="auto", nullable=False))
        batch.add_column(sa.Column("devices", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("min_memory_gb", sa.Double(), nullable=True))
        batch.add_column(sa.Column("worker_node", sa.String(200), nullable=True))
        batch.add_column(sa.Column("assigned_devices", JSON, nullable=True))
        batch.add_column(sa.Column("waiting_for", sa.String(16), nullable=True))
        batch.create_index("ix_jobs_status_accelerator", ["status", "accelerator"])
        batch.create_index("ix_jobs_tenant_started", ["tenant", "started_at"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("max_running_jobs", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_running_devices", sa.Integer(), nullable=True))
    _fill_queued_jobs()


def _fill_queued_jobs() -> None:
    """What the jobs not yet ended need, read from their specs (older specs have the defaults)."""
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String),
        sa.column("spec", JSON),
        sa.column("status", sa.String),
        sa.column("priority_rank", sa.Integer),
        sa.column("accelerator", sa.String),
        sa.column("devices", sa.Integer),
        sa.column("min_memory_gb", sa.Float),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(jobs.c.id, jobs.c.spec).where(jobs.c.status.in_(["queued", "running", "cancelling"]))
    ).all()
    for job_id, spec in rows:
        resources = (spec or {}).get("resources") or {}
        connection.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(
                priority_rank=PRIORITY_RANKS.get((spec or {}).get("priority", "normal"), 1),
                accelerator=resources.get("accelerator", "auto"),
                devices=resources.get("devices", 1),
                min_memory_gb=resources.get("min_memory_gb"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("max_running_devices")
        batch.drop_column("max_running_jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_tenant_started")
        batch.drop_index("ix_jobs_status_accelerator")
        for column in (
            "waiting_for", "assigned_devices", "worker_node", "min_memory_gb", "devices", "accelerator",
            "priority_rank",
        ):
            batch.drop_column(column)
    op.drop_index(op.f("ix_workers_heartbeat_at"), table_name="workers")
    op.drop_table("workers")
