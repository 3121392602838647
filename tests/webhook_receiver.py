"""A webhook receiver on loopback, run by tests: it records every request and answers as told per path."""

import select
import socket
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
    at: float = field(default_factory=time.monotonic)


@dataclass
class Receiver:
    """What was received, and how to answer: `failures[path]` 500s first, `delays[path]` seconds late,
    `drips[path]`: a 200 whose body comes one byte per that many seconds, never ending; `hangs`: paths
    that never answer. `overlaps` lists the message ids that arrived while a request with the same id
    was still open."""

    url: str
    received: list[Received] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    drips: dict[str, float] = field(default_factory=dict)
    hangs: set[str] = field(default_factory=set)
    overlaps: list[str] = field(default_factory=list)
    open_ids: dict[str, int] = field(default_factory=dict)
    stopped: threading.Event = field(default_factory=threading.Event)
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


class Handler(BaseHTTPRequestHandler):
    """Answers as its server's receiver says."""

    server: "ReceiverServer"

    @property
    def receiver(self) -> Receiver:
        return self.server.receiver

    def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
        receiver = self.receiver
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        message_id = self.headers.get("webhook-id", "")
        with receiver.lock:
            receiver.received.append(Received(self.path, dict(self.headers.items()), body))
            if receiver.open_ids.get(message_id):
                receiver.overlaps.append(message_id)
            receiver.open_ids[message_id] = receiver.open_ids.get(message_id, 0) + 1
        try:
            self.answer()
        finally:
            with receiver.lock:
                receiver.open_ids[message_id] -= 1

    def answer(self) -> None:
        receiver = self.receiver
        if self.path in receiver.hangs:
            self.wait_while_connected(float("inf"))
            return
        if self.path in receiver.drips:
            self.drip(receiver.drips[self.path])
            return
        with receiver.lock:
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

    def drip(self, seconds_per_byte: float) -> None:
        """A 200 that promises a long body and sends it a byte at a time, until the caller hangs up."""
        with suppress(OSError):
            self.send_response(200)
            self.send_header("content-length", "1000000")
            self.end_headers()
            while True:
                self.wfile.write(b".")
                self.wfile.flush()
                if not self.wait_while_connected(seconds_per_byte):
                    return

    def wait_while_connected(self, seconds: float) -> bool:
        """Wait up to `seconds`; False as soon as the caller hangs up or the receiver stops."""
        receiver = self.receiver
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if receiver.stopped.wait(0.02):
                return False
            try:
                readable, _, _ = select.select([self.connection], [], [], 0)
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    return False
            except OSError:
                return False
        return True

    def log_message(self, *_: Any) -> None:
        pass


class ReceiverServer(ThreadingHTTPServer):
    """An HTTP server answering for one receiver."""

    receiver: Receiver


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 on a free port, stopped when the block ends."""
    server = ReceiverServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = server.receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.stopped.set()
        server.shutdown()
        server.server_close()
