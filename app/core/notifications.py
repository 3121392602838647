"""Wake-ups on database changes: one Postgres `LISTEN` connection per API process, shared by every waiter.

Triggers (migration 0005) `NOTIFY` a job's id when an event is appended to it or it is deleted, and a
key's id when it is revoked; a notification is sent when its transaction commits. Waiters (the open
event streams) sleep on an `anyio.Event` and read the database only when woken, so an idle stream costs
no pooled connection and no query. The listener holds one connection of its own, outside the pool; when
it is lost, every waiter is woken (it may have missed a change) and waiters poll until it is back.
SQLite has no notifications: there, `listening` stays false and waiters poll.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import anyio
import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy import make_url

from app.core.outage import OutageLog

logger = logging.getLogger(__name__)
JOB_CHANNEL = "distillery_jobs"
KEY_CHANNEL = "distillery_api_keys"
CHANNELS = (JOB_CHANNEL, KEY_CHANNEL)
RECONNECT_SECONDS = 1.0
# An idle listener hears nothing from a server that vanished: TCP keepalives notice a dead peer.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
Topic = tuple[str, str]


class Wakeup:
    """A waiter's flag: set by a notification, cleared before each read so none is missed in between."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        """Wake the waiter (now, or at its next wait)."""
        self._event.set()

    def clear(self) -> None:
        """Forget past wake-ups; call before reading what the waiter is woken for."""
        if self._event.is_set():
            self._event = anyio.Event()

    async def wait(self, timeout: float) -> bool:
        """Sleep until woken or `timeout` seconds pass; whether it was woken."""
        with anyio.move_on_after(timeout):
            await self._event.wait()
        return self._event.is_set()


class ChangeNotifications:
    """Dispatches the database's notifications to the waiters subscribed to their channel and payload."""

    def __init__(self, database_url: str, *, connect_timeout: float) -> None:
        url = make_url(database_url)
        self.enabled = url.get_backend_name() == "postgresql"
        self._conninfo = make_conninfo(
            url.set(drivername="postgresql").render_as_string(hide_password=False), **KEEPALIVES
        )
        self._connect_timeout = max(2, round(connect_timeout))
        self._waiters: defaultdict[Topic, set[Wakeup]] = defaultdict(set)
        self.listening = False

    @contextmanager
    def subscribe(self, topics: Iterable[Topic]) -> Iterator[Wakeup]:
        """A wake-up set whenever one of `topics` (channel, payload) is notified, while the block runs."""
        wakeup, topics = Wakeup(), list(topics)
        for topic in topics:
            self._waiters[topic].add(wakeup)
        try:
            yield wakeup
        finally:
            for topic in topics:
                waiters = self._waiters.get(topic)
                if waiters is not None:
                    waiters.discard(wakeup)
                    if not waiters:
                        del self._waiters[topic]

    def notify(self, channel: str, payload: str) -> None:
        """Wake the waiters of one notification."""
        for wakeup in list(self._waiters.get((channel, payload), ())):
            wakeup.set()

    def wake_all(self) -> None:
        """Wake every waiter: after a lost connection, any of them may have missed a change."""
        for waiters in list(self._waiters.values()):
            for wakeup in list(waiters):
                wakeup.set()

    async def run(self, outage: OutageLog) -> None:
        """Listen until cancelled, reconnecting after a lost connection; failures go to `outage`, the
        log of the database's outages that the requests share, so one outage is one warning."""
        if not self.enabled:
            return
        while True:
            try:
                await self._listen(outage)
            except (psycopg.Error, OSError) as error:
                outage.failed(error)
            except Exception:
                logger.exception("the change listener failed; it starts again")
            finally:
                self.listening = False
                self.wake_all()
            await anyio.sleep(RECONNECT_SECONDS)

    async def _listen(self, outage: OutageLog) -> None:
        """One connection's life: LISTEN on every channel, then dispatch until it drops."""
        async with await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
        ) as connection:
            for channel in CHANNELS:
                await connection.execute(f"LISTEN {channel}")
            outage.answered()
            self.listening = True
            # Changes made while no connection listened were not notified: waiters read once now.
            self.wake_all()
            async for notification in connection.notifies():
                self.notify(notification.channel, notification.payload)
