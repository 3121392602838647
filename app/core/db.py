"""Database engine and sessions, from the settings."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import get_settings
from app.core.idle_ping import ping_when_idle

# A pooled connection idle this long is pinged before use; one used more recently is trusted.
IDLE_PING_SECONDS = 1.0
# Errors that say the database could not be reached or lost the connection, not that a statement is wrong.
UNREACHABLE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeoutError,
)


def is_pool_exhausted(error: BaseException) -> bool:
    """Whether an error is a wait for a pooled connection that timed out: busy, not necessarily down."""
    return isinstance(error, PoolTimeoutError)


def is_database_unreachable(error: BaseException) -> bool:
    """Whether an error means the database is (for now) out of reach, so the same work may succeed later."""
    if isinstance(error, UNREACHABLE_ERRORS):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def make_engine(
    url: str, *, timeout_seconds: float = 5.0, pool_size: int = 5, max_overflow: int = 10
) -> Engine:
    """An engine tuned for the backend: SQLite gets WAL and a busy timeout, Postgres a checked pool.

    On a server database, connecting and waiting for a pooled connection both give up after
    `timeout_seconds`, so a request fails fast during an outage instead of hanging; a connection idle
    for a second or more is pinged before use (`app.core.idle_ping`).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    connect_args = {"connect_timeout": max(2, round(timeout_seconds))} if url.startswith("postgresql") else {}
    engine = create_engine(
        url,
        pool_timeout=timeout_seconds,
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_args=connect_args,
    )
    ping_when_idle(engine, idle_seconds=IDLE_PING_SECONDS)
    return engine


@lru_cache
def get_engine() -> Engine:
    """The process's engine."""
    settings = get_settings()
    return make_engine(settings.database_url, timeout_seconds=settings.database_timeout_seconds)


def make_sessionmaker(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions on `engine`; read-only ones run in autocommit, sparing the BEGIN and COMMIT round trips."""
    bind = engine.execution_options(isolation_level="AUTOCOMMIT") if read_only else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    """The process's session factory."""
    return make_sessionmaker(get_engine())


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error, for code outside a request."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
