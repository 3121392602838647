"""Pooled connections are pinged only after sitting idle, and a dead idle one is replaced unseen."""

from collections.abc import Iterator
from time import monotonic as real_monotonic
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from app.core.db import make_engine


@pytest.fixture
def engine(settings: Any) -> Iterator[Engine]:
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def statements_of(engine: Engine) -> list[str]:
    """Every statement the engine's connections are sent from now on, pings included."""
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    real_ping = engine.dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        sent.append("ping")
        return real_ping(dbapi_connection)

    engine.dialect.do_ping = counted_ping  # type: ignore[method-assign]
    return sent


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT pg_backend_pid()")))


def test_a_connection_given_back_moments_ago_is_used_without_a_ping(engine: Engine) -> None:
    backend_pid(engine)
    sent = statements_of(engine)
    backend_pid(engine)
    assert sent == ["SELECT pg_backend_pid()"]


def an_hour_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, the pool's clock reads an hour later: every connection given back is idle."""
    monkeypatch.setattr("app.core.idle_ping.time.monotonic", lambda: real_monotonic() + 3600)


def test_an_idle_connection_is_pinged_first(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    backend_pid(engine)
    sent = statements_of(engine)
    an_hour_later(monkeypatch)
    backend_pid(engine)
    assert sent == ["ping", "SELECT pg_backend_pid()"]


def test_an_idle_connection_the_server_closed_is_replaced_without_an_error(
    engine: Engine, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = backend_pid(engine)
    admin = make_engine(settings.database_url)
    with admin.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    admin.dispose()
    an_hour_later(monkeypatch)
    assert backend_pid(engine) != first
