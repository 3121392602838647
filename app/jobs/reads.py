"""The read behind `GET /v1/jobs/{id}`: one prepared statement of the columns a job's answer shows.

Clients poll this route, so it is the API's hottest read. Building an ORM object of every column, and
the statement itself, on each request cost more CPU than the rest of the request; a Core row of the
shown columns, from a statement built once, is the same answer for a fraction of it. The same statement
re-checks the caller's key, so the route can take its grant from the cache (`app.auth.grant_cache`)
and a revoked or expired key is still refused from its next request.
"""

from sqlalchemy import Connection, String, bindparam, select

from app.api.errors import NotFound
from app.auth.service import KeyGrant, KeyRefused, live_key
from app.jobs.models import Job
from app.jobs.schemas import JobPublic

KEY_LIVE = live_key(bindparam("key_id", type_=String))
# Labelled with the ORM attribute names `JobPublic.from_row` reads.
JOB_BY_ID = select(
    KEY_LIVE.label("key_live"),
    Job.id,
    Job.name,
    Job.status,
    Job.spec,
    Job.step,
    Job.total_steps,
    Job.epoch,
    Job.estimated_finish_at,
    Job.error,
    Job.attempts,
    Job.result,
    Job.control_job_id.label("control_job_id"),
    Job.parent_id,
    Job.sweep_id,
    Job.waiting_for,
    Job.created_at,
    Job.started_at,
    Job.finished_at,
    Job.cancel_requested_at,
    Job.metadata_.label("metadata_"),
).where(Job.id == bindparam("job_id"), Job.tenant == bindparam("tenant"))
KEY_ALONE = select(KEY_LIVE)


def read_job(connection: Connection, *, grant: KeyGrant, job_id: str) -> JobPublic:
    """The public view of a job of the grant's tenant; 404 for a missing job and for another tenant's.

    Raises KeyRefused when the grant's key was revoked or deleted, or has expired.
    """
    params = {"job_id": job_id, "tenant": grant.tenant, "key_id": grant.key_id}
    row = connection.execute(JOB_BY_ID, params).first()
    live = row.key_live if row is not None else connection.scalar(KEY_ALONE, params)
    if not live:
        raise KeyRefused(grant.key_id)
    if row is None:
        raise NotFound("job", job_id)
    return JobPublic.from_row(row)
