"""A daemon thread that runs an action every few seconds for as long as the Celery worker runs."""

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from kombu.exceptions import OperationalError as BrokerUnreachable

from app.core.db import is_database_unreachable
from app.core.outage import OutageLog

logger = logging.getLogger(__name__)


class PeriodicThread:
    """Runs `action` at once, then every `every` seconds until stopped; a database or broker outage logs
    one warning and the thread goes on, any other failure logs its traceback."""

    def __init__(self, name: str, every: float, action: Callable[[], object]) -> None:
        self.name, self.every, self.action = name, every, action
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"distillery-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _loop(self) -> None:
        outage = OutageLog(logger, what=f"the {self.name}'s database or broker")
        while True:
            try:
                self.action()
                outage.answered()
            except Exception as error:  # keep the thread alive through a database or broker outage
                if is_database_unreachable(error) or isinstance(error, BrokerUnreachable):
                    outage.failed(error)  # one warning per outage, not a traceback every pass
                else:
                    logger.exception("%s pass failed", self.name)
            if self._stopped.wait(self.every):
                return


def run_while_worker_runs(make: Callable[[], PeriodicThread]) -> None:
    """Start the thread `make` builds once the Celery worker is ready; stop it when the worker shuts down."""
    threads: list[PeriodicThread] = []

    def start(**_: Any) -> None:
        threads.append(make())
        threads[-1].start()

    def stop(**_: Any) -> None:
        for thread in threads:
            thread.stop()

    # Strong references: the signals would otherwise drop these local functions at once.
    worker_ready.connect(start, weak=False)
    worker_shutdown.connect(stop, weak=False)
