"""A job's events as Server-Sent Events, read from the events table as they are appended.

Each look for new events opens a short read-only session and closes it, so an open stream holds no
database connection while it waits; the wait is `event_stream_poll_seconds`. The stream ends once the
job is finished and every event up to its last status change is sent: the job's status is read before
its events, and a status change is committed with its event, so nothing written before the end is
missed. A client that disconnects, or a server that shuts down, stops the stream (sse-starlette).
"""

import logging
from collections.abc import AsyncIterator, Iterator
from functools import partial

import anyio
from prometheus_client import Gauge
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.core.db import is_database_unreachable
from app.core.outage import OutageLog
from app.jobs.models import TERMINAL_STATUSES, Job, JobEvent
from app.jobs.schemas import JobEventPublic

logger = logging.getLogger(__name__)
PAGE_SIZE = 500
# "\n" rather than sse-starlette's default "\r\n": both are valid, and "\n" is what simple parsers expect.
LINE_END = "\n"
KEEP_ALIVE = "keep-alive"


def read_new_events(
    sessions: sessionmaker[Session], *, job_id: str, after: int
) -> tuple[str | None, list[JobEventPublic]]:
    """The job's status (None once it is deleted), then up to a page of its events after `after`."""
    with sessions() as session:
        status = session.scalar(select(Job.status).where(Job.id == job_id))
        rows = session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.seq > after)
            .order_by(JobEvent.seq)
            .limit(PAGE_SIZE)
        )
        return status, [JobEventPublic.from_row(row) for row in rows]


def as_message(event: JobEventPublic) -> ServerSentEvent:
    """`id: <seq>`, `event: <type>`, `data: <the event as listed by GET /v1/jobs/{id}/events>`."""
    return ServerSentEvent(event.model_dump_json(), id=str(event.id), event=event.type, sep=LINE_END)


async def job_events(
    sessions: sessionmaker[Session], *, job_id: str, after: int, poll_seconds: float, open_streams: Gauge
) -> AsyncIterator[ServerSentEvent]:
    """The job's events after `after`, as they are appended, until the job is finished."""
    outage = OutageLog(logger, what=f"the database (event stream of job {job_id})")
    open_streams.inc()
    try:
        while True:
            try:
                status, events = await anyio.to_thread.run_sync(
                    partial(read_new_events, sessions, job_id=job_id, after=after)
                )
            except Exception as error:
                if not is_database_unreachable(error):
                    raise
                outage.failed(error)  # the keep-alive comments hold the connection open meanwhile
                await anyio.sleep(poll_seconds)
                continue
            outage.answered()
            for event in events:
                yield as_message(event)
                after = event.id
            if len(events) == PAGE_SIZE:
                continue
            if status is None or status in TERMINAL_STATUSES:
                return
            await anyio.sleep(poll_seconds)
    finally:
        open_streams.dec()


def event_stream(
    sessions: sessionmaker[Session],
    *,
    job_id: str,
    after: int,
    poll_seconds: float,
    keep_alive_seconds: float,
    open_streams: Gauge,
    head_only: bool = False,
) -> EventSourceResponse:
    """The `text/event-stream` response of a job's events, with a keep-alive comment while idle.

    A HEAD request gets the headers alone: its stream would otherwise run, unseen, until the job ends.
    """
    content: AsyncIterator[ServerSentEvent] | Iterator[ServerSentEvent] = iter(())
    if not head_only:
        content = job_events(
            sessions, job_id=job_id, after=after, poll_seconds=poll_seconds, open_streams=open_streams
        )
    return EventSourceResponse(
        content,
        ping=keep_alive_seconds,
        sep=LINE_END,
        ping_message_factory=lambda: ServerSentEvent(comment=KEEP_ALIVE, sep=LINE_END),
    )
