"""The test Postgres server: URLs of its databases and statements run on its maintenance database."""

import os

import psycopg

POSTGRES_ADMIN_URL = os.environ.get(
    "DISTILLERY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def database_url(name: str) -> str:
    """The SQLAlchemy URL of a database on the test server."""
    server = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{server}/{name}"


def admin_execute(statement: str) -> None:
    """Run one statement on the server's maintenance database, outside a transaction."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)  # type: ignore[arg-type]
