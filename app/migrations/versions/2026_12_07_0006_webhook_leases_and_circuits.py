"""Webhooks: a lease on each delivery while a try is in flight, and a circuit breaker per endpoint.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("sending_until", TIMESTAMP, nullable=True))
        batch.create_index("ix_webhook_deliveries_endpoint_sending", ["endpoint_id", "sending_until"])
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(sa.Column("consecutive_failures", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("circuit_open_until", TIMESTAMP, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("circuit_open_until")
        batch.drop_column("consecutive_failures")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_index("ix_webhook_deliveries_endpoint_sending")
        batch.drop_column("sending_until")
