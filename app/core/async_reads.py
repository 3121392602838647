"""Reads that await the database on the event loop instead of holding a thread of the pool.

A sync read costs two thread hand-offs (to the pool and back) and the wake-ups between them, more than
its query on a busy API. On Postgres, `Reader.run` gives a sync read function a connection of an
asyncio engine (psycopg's async driver): SQLAlchemy runs it in a greenlet on the event loop, each query
awaited. Elsewhere (SQLite, the embedded default) it runs in the thread pool with a connection of the
sync engine. Both read in autocommit, as the read-only sessions of `app.core.db` do.
"""

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.concurrency import run_in_threadpool

from app.core.db import IDLE_PING_SECONDS
from app.core.idle_ping import ping_when_idle

T = TypeVar("T")
ASYNC_DRIVER = "postgresql+psycopg_async"


def make_async_read_engine(
    url: str, *, timeout_seconds: float, pool_size: int, max_overflow: int
) -> AsyncEngine | None:
    """An autocommit asyncio engine on the same Postgres database; None where there is no async driver."""
    parsed = make_url(url)
    if parsed.drivername not in ("postgresql", "postgresql+psycopg"):
        return None
    engine = create_async_engine(
        parsed.set(drivername=ASYNC_DRIVER),
        isolation_level="AUTOCOMMIT",
        pool_timeout=timeout_seconds,
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_args={"connect_timeout": max(2, round(timeout_seconds))},
    )
    ping_when_idle(engine.sync_engine, idle_seconds=IDLE_PING_SECONDS)
    return engine


class Reader:
    """Runs a sync read function with a connection: on the event loop where it can, else in a thread."""

    def __init__(self, engine: AsyncEngine | None, sync_engine: Engine) -> None:
        self.engine = engine
        self.sync_engine = sync_engine.execution_options(isolation_level="AUTOCOMMIT")

    async def run(self, read: Callable[[Connection], T]) -> T:
        """`read(connection)`'s result; the connection is back in its pool when this returns."""
        if self.engine is None:
            return await run_in_threadpool(self._in_thread, read)
        async with self.engine.connect() as connection:
            return await connection.run_sync(read)

    def _in_thread(self, read: Callable[[Connection], T]) -> T:
        with self.sync_engine.connect() as connection:
            return read(connection)

    async def dispose(self) -> None:
        """Close the asyncio engine's connections."""
        if self.engine is not None:
            await self.engine.dispose()
