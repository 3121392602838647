"""Pings a pooled connection on checkout only when it sat idle, instead of on every checkout.

SQLAlchemy's `pool_pre_ping` costs a round trip per checkout, as much as a request's own query on a
busy API. A connection given back less than `idle_seconds` ago was working then; one that fails anyway
(the server restarted in between) raises a disconnection error on its first statement, which
invalidates every connection of the pool opened before it, so the next checkouts reconnect.
"""

import time
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import InvalidatePoolError

IDLE_SINCE = "distillery_idle_since"


def ping_when_idle(engine: Engine, *, idle_seconds: float) -> None:
    """On checkout, ping a connection idle for `idle_seconds` or more; a failed ping renews the pool."""

    @event.listens_for(engine, "checkin")
    def _note_idle(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return  # just connected, or given back moments ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise InvalidatePoolError(f"the idle connection's ping failed: {error}") from error
        if not alive:
            raise InvalidatePoolError("the idle connection's ping failed")
