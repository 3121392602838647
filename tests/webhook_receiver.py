"""A webhook receiver on loopback, run by tests: it records every request and answers as told per path."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# What a failing receiver answers: larger than what the service keeps of an answer.
ERROR_BODY = b"receiver overloaded " * 500


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What was received, and how to answer: `failures[path]` 500s first, `delays[path]` seconds late."""

    url: str
    received: list[Received] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[Received]:
        """The requests made to one path, in arrival order."""
        with self.lock:
            return [request for request in self.received if request.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 60) -> list[Received]:
        """Wait until `count` requests reached `path`; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.on(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.on(path))} of {count} requests reached {path}")
            time.sleep(0.05)
        return self.on(path)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 on a free port, stopped when the block ends."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with receiver.lock:
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                failing = receiver.failures.get(self.path, 0)
                if failing:
                    receiver.failures[self.path] = failing - 1
            time.sleep(receiver.delays.get(self.path, 0))
            status, answer = (500, ERROR_BODY) if failing else (200, b'{"ok": true}')
            with suppress(OSError):  # a caller that timed out has hung up
                self.send_response(status)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
