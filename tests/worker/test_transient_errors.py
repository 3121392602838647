"""Which failures count as transient (a job is requeued) and how long database work is retried."""

import errno
import time

import pytest
from local_ports import free_port
from sqlalchemy import create_engine, text

from engine.errors import UserError
from worker.transient import retry_database, transient_code, transient_error


def unreachable_database_error() -> Exception:
    """The error a connection to a port nothing listens on really raises."""
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        return error
    finally:
        engine.dispose()
    raise AssertionError("a closed port accepted a connection")


def unreachable_broker_error() -> Exception:
    from kombu import Connection

    with Connection(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=1) as connection:
        try:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        except Exception as error:
            return error
    raise AssertionError("a closed port accepted a connection")


def test_infrastructure_outages_are_transient_with_a_code_naming_the_dependency() -> None:
    assert transient_code(unreachable_database_error()) == "database_unavailable"
    assert transient_code(unreachable_broker_error()) == "broker_unavailable"
    assert transient_code(OSError(errno.ESTALE, "Stale file handle")) == "storage_unavailable"
    stored = transient_error(unreachable_database_error())
    assert stored.type == "system" and stored.retryable is True and stored.param is None


@pytest.mark.parametrize(
    "error",
    [
        UserError("bad spec", param="method.alpha"),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EACCES, "Permission denied"),
        FileNotFoundError(errno.ENOENT, "missing"),
        RuntimeError("CUDA out of memory"),
        ValueError("a bug"),
    ],
)
def test_user_errors_bugs_and_lasting_conditions_are_not_transient(error: Exception) -> None:
    assert transient_code(error) is None


def test_database_work_is_retried_until_the_budget_runs_out_then_the_error_is_raised() -> None:
    calls = []

    def connect() -> None:
        calls.append(time.monotonic())
        raise unreachable_database_error()

    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        retry_database(connect, budget_seconds=1.0, what="a test")
    assert transient_code(raised.value) == "database_unavailable"
    assert len(calls) >= 3
    assert 1.0 <= time.monotonic() - started < 4.0


def test_other_errors_are_raised_at_once() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("not a database outage")

    with pytest.raises(ValueError):
        retry_database(broken, budget_seconds=10, what="a test")
    assert calls == [1]
