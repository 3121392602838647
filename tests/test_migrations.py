"""Migrations: an empty database upgrades to exactly the models, and downgrades to nothing."""

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from postgres_admin import admin_execute, database_url
from sqlalchemy import create_engine, inspect

from app.main import MIGRATIONS_DIR
from app.models import Base

VERSION_TABLE = "alembic_version"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = url
    return config


def schema_diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {VERSION_TABLE}
    finally:
        engine.dispose()


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    """A brand-new Postgres database, dropped afterwards."""
    name = f"distillery_migrations_{secrets.token_hex(4)}"
    admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_postgres_upgrades_to_the_models_and_downgrades_to_nothing(empty_postgres: str) -> None:
    config = alembic_config(empty_postgres)
    command.upgrade(config, "head")
    assert tables(empty_postgres) == set(Base.metadata.tables)
    assert schema_diff(empty_postgres) == []
    command.downgrade(config, "base")
    assert tables(empty_postgres) == set()


def test_sqlite_upgrades_to_the_models_and_downgrades_to_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    config = alembic_config(url)
    command.upgrade(config, "head")
    assert schema_diff(url) == []
    command.downgrade(config, "base")
    assert tables(url) == set()
