"""A job's events as Server-Sent Events, read from the events table as they are appended.

An open stream sleeps until the database notifies a change of its job or of its key (`app.core.notifications`)
and then reads the new events in a short read-only session, closed at once: an idle stream holds no
database connection and sends no query. Without notifications (SQLite, or while the listener reconnects)
it looks every `event_stream_poll_seconds`; with them, still every `SAFETY_POLL_SECONDS`. Each read
also checks the stream's API key, so a revoked or expired key closes its streams. The stream ends once
the job is finished and every event up to its last status change is sent: the job's status is read
before its events, and a status change is committed with its event, so nothing written before the end
is missed. A client that disconnects, or a server that shuts down, stops the stream (sse-starlette).
"""

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import partial

import anyio
from prometheus_client import Gauge
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.auth.service import KeyGrant, key_is_active
from app.core.base import utcnow
from app.core.db import is_database_unreachable
from app.core.notifications import JOB_CHANNEL, KEY_CHANNEL, ChangeNotifications
from app.core.outage import OutageLog
from app.jobs.models import TERMINAL_STATUSES, Job, JobEvent
from app.jobs.schemas import JobEventPublic

logger = logging.getLogger(__name__)
PAGE_SIZE = 500
# "\n" rather than sse-starlette's default "\r\n": both are valid, and "\n" is what simple parsers expect.
LINE_END = "\n"
KEEP_ALIVE = "keep-alive"
# With notifications a stream still reads this often, in case one was lost on a broken connection.
SAFETY_POLL_SECONDS = 30.0
# A key expiring at t is refused from t on: look just after it.
EXPIRY_MARGIN_SECONDS = 0.05


@dataclass(frozen=True)
class StreamSource:
    """Where a stream reads and what wakes it."""

    sessions: sessionmaker[Session]
    notifications: ChangeNotifications
    poll_seconds: float
    readers: anyio.CapacityLimiter


@dataclass(frozen=True)
class StreamRead:
    """One look at the database: the job's status (None once deleted), new events, the key's validity."""

    status: str | None
    events: list[JobEventPublic]
    key_active: bool = True


def read_new_events(
    sessions: sessionmaker[Session], *, job_id: str, after: int, key_id: str | None = None
) -> StreamRead:
    """The job's status, then up to a page of its events after `after`, and whether the key still holds."""
    with sessions() as session:
        if key_id is not None and not key_is_active(session=session, key_id=key_id):
            return StreamRead(None, [], key_active=False)
        status = session.scalar(select(Job.status).where(Job.id == job_id))
        rows = session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.seq > after)
            .order_by(JobEvent.seq)
            .limit(PAGE_SIZE)
        )
        return StreamRead(status, [JobEventPublic.from_row(row) for row in rows])


def as_message(event: JobEventPublic) -> ServerSentEvent:
    """`id: <seq>`, `event: <type>`, `data: <the event as listed by GET /v1/jobs/{id}/events>`."""
    return ServerSentEvent(event.model_dump_json(), id=str(event.id), event=event.type, sep=LINE_END)


async def job_events(
    source: StreamSource, *, job_id: str, after: int, grant: KeyGrant | None, open_streams: Gauge
) -> AsyncIterator[ServerSentEvent]:
    """The job's events after `after`, as they are appended, until the job is finished or the key ends."""
    outage = OutageLog(logger, what=f"the database (event stream of job {job_id})")
    key_id = grant.key_id if grant is not None else None
    topics = [(JOB_CHANNEL, job_id)] + ([(KEY_CHANNEL, key_id)] if key_id else [])
    open_streams.inc()
    try:
        with source.notifications.subscribe(topics) as wakeup:
            while True:
                wakeup.clear()
                try:
                    read = await anyio.to_thread.run_sync(
                        partial(read_new_events, source.sessions, job_id=job_id, after=after, key_id=key_id),
                        limiter=source.readers,
                    )
                except Exception as error:
                    if not is_database_unreachable(error):
                        raise
                    outage.failed(error)  # the keep-alive comments hold the connection open meanwhile
                    await anyio.sleep(source.poll_seconds)
                    continue
                outage.answered()
                if not read.key_active:
                    return
                for event in read.events:
                    yield as_message(event)
                    after = event.id
                if len(read.events) == PAGE_SIZE:
                    continue
                if read.status is None or read.status in TERMINAL_STATUSES:
                    return
                await wakeup.wait(_idle_seconds(source, grant))
    finally:
        open_streams.dec()


def _idle_seconds(source: StreamSource, grant: KeyGrant | None) -> float:
    """How long a stream sleeps unless woken: to its key's expiry at most."""
    seconds = SAFETY_POLL_SECONDS if source.notifications.listening else source.poll_seconds
    if grant is not None and grant.expires_at is not None:
        until_expiry = (grant.expires_at - utcnow()).total_seconds()
        seconds = min(seconds, max(until_expiry, 0.0) + EXPIRY_MARGIN_SECONDS)
    return seconds


def event_stream(
    source: StreamSource,
    *,
    job_id: str,
    after: int,
    grant: KeyGrant | None,
    keep_alive_seconds: float,
    open_streams: Gauge,
    head_only: bool = False,
) -> EventSourceResponse:
    """The `text/event-stream` response of a job's events, with a keep-alive comment while idle.

    A HEAD request gets the headers alone: its stream would otherwise run, unseen, until the job ends.
    """
    content: AsyncIterator[ServerSentEvent] | Iterator[ServerSentEvent] = iter(())
    if not head_only:
        content = job_events(source, job_id=job_id, after=after, grant=grant, open_streams=open_streams)
    return EventSourceResponse(
        content,
        ping=keep_alive_seconds,
        sep=LINE_END,
        ping_message_factory=lambda: ServerSentEvent(comment=KEEP_ALIVE, sep=LINE_END),
    )
