"""Change notifications: Postgres NOTIFYs a job's new events, its deletion and a key's revocation.

A notification is sent when its transaction commits, so a listener that reads after it sees the change.
On SQLite there is no listener: event streams poll instead.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_CHANNEL = "distillery_jobs"
KEY_CHANNEL = "distillery_api_keys"


# (function, table, event and condition of its trigger, channel, the row's id it sends)
TRIGGERS = [
    ("distillery_notify_job_event", "job_events", "AFTER INSERT", "", JOB_CHANNEL, "NEW.job_id"),
    ("distillery_notify_job_deleted", "jobs", "AFTER DELETE", "", JOB_CHANNEL, "OLD.id"),
    (
        "distillery_notify_key_revoked",
        "api_keys",
        "AFTER UPDATE OF revoked_at",
        "WHEN (NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL)",
        KEY_CHANNEL,
        "NEW.id",
    ),
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for function, table, event, condition, channel, payload in TRIGGERS:
        op.execute(
            f"""
            CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('{channel}', {payload});
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            f"CREATE TRIGGER {function}_trigger {event} ON {table} "
            f"FOR EACH ROW {condition} EXECUTE FUNCTION {function}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for function, table, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {function}_trigger ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
