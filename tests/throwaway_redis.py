"""A Redis server of a test's own, on a free port and without persistence: its restart loses every message."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.service.local_servers import RedisServer


@contextmanager
def throwaway_redis(directory: Path) -> Iterator[RedisServer]:
    """A started server; `stop()` and `start()` cut it and bring it back empty. Stopped at the end."""
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["RedisServer", "throwaway_redis"]
