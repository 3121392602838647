"""The pool's report of a process stopped by SIGTERM is INFO, not ERROR; other exits stay errors."""

import logging
from collections.abc import Iterator

import pytest

from worker.pool_exits import POOL_LOGGER, PoolExitBySigterm


def record(status: str) -> logging.LogRecord:
    return logging.LogRecord(
        POOL_LOGGER,
        logging.ERROR,
        "pool.py",
        1,
        "Process %r pid:%r exited with %r",
        ("ForkPoolWorker-1", 42, status),
        None,
    )


@pytest.fixture
def pool_logger() -> Iterator[logging.Logger]:
    """The pool's logger, its level restored afterwards."""
    logger = logging.getLogger(POOL_LOGGER)
    level = logger.level
    yield logger
    logger.setLevel(level)


@pytest.mark.parametrize(("level", "shown"), [(logging.INFO, True), (logging.WARNING, False)])
def test_a_sigterm_exit_is_info_and_hidden_below_info(
    pool_logger: logging.Logger, level: int, shown: bool
) -> None:
    pool_logger.setLevel(level)
    terminated = record("signal 15 (SIGTERM)")

    assert PoolExitBySigterm().filter(terminated) is shown
    assert terminated.levelname == "INFO"


def test_a_crash_stays_an_error() -> None:
    crashed = record("signal 9 (SIGKILL)")

    assert PoolExitBySigterm().filter(crashed) and crashed.levelno == logging.ERROR
