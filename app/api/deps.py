"""Request dependencies: settings, the artifact store and a transactional session."""

from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.core.async_reads import Reader
from app.core.config import Settings
from app.core.storage import ArtifactStore, open_store

CHALLENGE = {"WWW-Authenticate": "Bearer"}
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


# `async` though they do no I/O: FastAPI runs a plain `def` dependency in the thread pool, a hop per request.
async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def get_store(settings: SettingsDep) -> ArtifactStore:
    """The artifact store shared with the workers."""
    return open_store(settings)


StoreDep = Annotated[ArtifactStore, Depends(get_store)]


async def get_reader(request: Request) -> Reader:
    """The app's reader: autocommit connections awaited on the event loop where the database allows it."""
    reader: Reader = request.app.state.reader
    return reader


ReaderDep = Annotated[Reader, Depends(get_reader)]


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session whose transaction commits when the handler succeeds and rolls back when it raises.

    A GET or HEAD only reads: its session runs in autocommit, which spares the BEGIN and COMMIT round trips.
    Opening a session does no I/O (it connects on first use). A sync handler's route ends the session in
    the handler's thread (`app.api.session_route`); what is left to end here runs in a thread of its own.
    """
    factory = "read_sessionmaker" if request.method in READ_ONLY_METHODS else "sessionmaker"
    session: Session = getattr(request.app.state, factory)()
    try:
        yield session
    except BaseException:
        await _end_in_thread(session, commit=False)
        raise
    await _end_in_thread(session, commit=True)


def end_session(session: Session, *, commit: bool) -> None:
    """Commit (or roll back) and give the connection back to the pool."""
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


async def _end_in_thread(session: Session, *, commit: bool) -> None:
    """End a session that still holds work, in a thread even when the request is cancelled, with a
    capacity of its own, as FastAPI ends a sync dependency: a connection is always given back, and never
    waits for a thread busy waiting for one. An already-ended session is just closed."""
    if not (session.in_transaction() or session.new or session.dirty or session.deleted):
        session.close()
        return
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(
            partial(end_session, session, commit=commit), limiter=anyio.CapacityLimiter(1)
        )


# "function" scope: the commit happens before the response is sent, so a 2xx means the change is stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
