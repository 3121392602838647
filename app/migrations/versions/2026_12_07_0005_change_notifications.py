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


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"""
        CREATE FUNCTION distillery_notify_job_event() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{JOB_CHANNEL}', NEW.job_id);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER job_events_notify AFTER INSERT ON job_events "
        "FOR EACH ROW EXECUTE FUNCTION distillery_notify_job_event()"
    )
    op.execute(
        f"""
        CREATE FUNCTION distillery_notify_job_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{JOB_CHANNEL}', OLD.id);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER jobs_notify_deleted AFTER DELETE ON jobs "
        "FOR EACH ROW EXECUTE FUNCTION distillery_notify_job_deleted()"
    )
    op.execute(
        f"""
        CREATE FUNCTION distillery_notify_key_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{KEY_CHANNEL}', NEW.id);
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER api_keys_notify_revoked AFTER UPDATE OF revoked_at ON api_keys "
        "FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL) "
        "EXECUTE FUNCTION distillery_notify_key_revoked()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS api_keys_notify_revoked ON api_keys")
    op.execute("DROP TRIGGER IF EXISTS jobs_notify_deleted ON jobs")
    op.execute("DROP TRIGGER IF EXISTS job_events_notify ON job_events")
    op.execute("DROP FUNCTION IF EXISTS distillery_notify_key_revoked()")
    op.execute("DROP FUNCTION IF EXISTS distillery_notify_job_deleted()")
    op.execute("DROP FUNCTION IF EXISTS distillery_notify_job_event()")
