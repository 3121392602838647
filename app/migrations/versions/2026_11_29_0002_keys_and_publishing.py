"""Key expiry and last use; when and under which message id each job was last published, and deliveries.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("last_used_at", TIMESTAMP, nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("published_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("publish_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("deliveries", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("deliveries")
        batch.drop_column("publish_id")
        batch.drop_column("published_at")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("expires_at")
