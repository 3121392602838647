"""A real HTTP proxy in front of a server (moto's S3), that answers 503 on demand: a flaky object store.

It forwards every request as it came (the Host header included, which the S3 signature covers) and
records each request's method, path and headers. `fail_next(n)` answers 503 to the next n requests;
`failing = True` answers 503 to all of them until it is set back.
"""

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

from local_ports import free_port

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


@dataclass(frozen=True)
class SeenRequest:
    """A request the proxy received."""

    method: str
    path: str
    headers: dict[str, str]


class FaultProxy:
    """A started proxy to `upstream` (`http://host:port`); `endpoint` is its own address."""

    def __init__(self, upstream: str) -> None:
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.failing = False
        self.failed = 0
        self.seen: list[SeenRequest] = []
        self._to_fail = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail_next(self, count: int) -> None:
        """Answer 503 to the next `count` requests."""
        with self._lock:
            self._to_fail = count

    def should_fail(self, seen: SeenRequest) -> bool:
        """Record a request; whether it gets a 503."""
        with self._lock:
            self.seen.append(seen)
            failing = self.failing or self._to_fail > 0
            self._to_fail = max(0, self._to_fail - 1)
            self.failed += int(failing)
            return failing

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read `proxy.seen`."""

        def _handle(self) -> None:
            body = self._body()
            seen = SeenRequest(self.command, self.path, dict(self.headers.items()))
            if proxy.should_fail(seen):
                self._answer(503, {"Content-Type": "application/xml", "Retry-After": "0"}, SLOW_DOWN)
                return
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                content = response.read()
                kept = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
                self._answer(response.status, kept, content, length=response.getheader("Content-Length"))
            finally:
                upstream.close()

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                return self._chunked_body()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _chunked_body(self) -> bytes:
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)

        def _answer(
            self, status: int, headers: dict[str, str], content: bytes, length: str | None = None
        ) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            # A HEAD answer announces the object's length but carries no body.
            self.send_header(
                "Content-Length", length if self.command == "HEAD" and length else str(len(content))
            )
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(content)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler
