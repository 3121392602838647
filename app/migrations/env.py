"""Alembic environment: the URL comes from the service settings, never from alembic.ini."""

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from app.core.config import get_settings
from app.core.db import make_engine
from app.models import Base

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
# Optuna's study tables (recipe sweeps) are created and versioned by Optuna, never by our revisions: on
# Postgres they sit in their own schema, and wherever a deployment keeps them beside ours they are not
# part of the comparison with the models.
OPTUNA_SCHEMA = "optuna"
OPTUNA_TABLES = frozenset(
    {
        "studies", "study_directions", "study_user_attributes", "study_system_attributes", "trials",
        "trial_user_attributes", "trial_system_attributes", "trial_params", "trial_values",
        "trial_intermediate_values", "trial_heartbeats", "version_info",
    }
)  # fmt: skip


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Leave Optuna's schema and tables out of autogenerate's comparison."""
    if type_ == "schema":
        return name != OPTUNA_SCHEMA
    if type_ == "table":
        return name not in OPTUNA_TABLES
    return True


def database_url() -> str:
    """The URL given by the caller (`upgrade_database`), else the settings'."""
    return config.attributes.get("database_url") or get_settings().database_url


def configure(**options: Any) -> None:
    # Batch mode rewrites ALTERs as table copies on SQLite, which cannot alter most constraints.
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        include_name=include_name,
        **options,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`)."""
    configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through a live connection."""
    engine = make_engine(database_url())
    try:
        with engine.connect() as connection:
            run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
