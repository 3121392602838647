"""A saturated API tells itself apart from a database outage, and sheds load only past its bound."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, text


@contextmanager
def every_connection_held(app: Any) -> Iterator[list[Connection]]:
    """Check out every connection the API's pool may open, as long-running holders would."""
    pool = app.state.engine.pool
    held = [app.state.engine.connect() for _ in range(pool.size() + pool._max_overflow)]
    for connection in held:
        connection.execute(text("SELECT 1"))  # a live connection to a database that answers
    try:
        yield held
    finally:
        for connection in held:
            connection.close()


def test_a_saturated_pool_on_a_healthy_database_answers_database_busy_not_unavailable(
    make_client: Callable[..., Any], settings: Any
) -> None:
    client = make_client(api_key=settings.dev_api_key, api_threads=1, database_timeout_seconds=1)

    with every_connection_held(client.app):
        busy = client.get("/v1/jobs")
    after = client.get("/v1/jobs")

    assert busy.status_code == 503 and busy.json()["error"]["code"] == "database_busy"
    assert busy.headers["Retry-After"] == "1"
    assert after.status_code == 200


def test_past_the_pending_bound_a_request_gets_server_busy_and_probes_still_answer(
    make_client: Callable[..., Any], settings: Any
) -> None:
    client = make_client(
        api_key=settings.dev_api_key, api_threads=1, database_timeout_seconds=2, api_max_pending_requests=1
    )
    answers: list[Any] = []

    with every_connection_held(client.app):
        waiting = threading.Thread(target=lambda: answers.append(client.get("/v1/jobs")))
        waiting.start()
        deadline = time.monotonic() + 5
        while not _pending(client.app) and time.monotonic() < deadline:
            time.sleep(0.01)
        shed = client.get("/v1/files")
        probe = client.get("/healthz")
    waiting.join()

    assert shed.status_code == 503 and shed.json()["error"]["code"] == "server_busy"
    assert shed.headers["Retry-After"] == "1"
    assert probe.status_code == 200
    assert answers[0].status_code == 503 and answers[0].json()["error"]["code"] == "database_busy"


def _pending(app: Any) -> int:
    """Requests the app's pending-request bound counts now."""
    from app.api.pending_limit import PendingRequestLimit

    layer = app.middleware_stack
    while layer is not None and not isinstance(layer, PendingRequestLimit):
        layer = getattr(layer, "app", None)
    return layer.pending if layer is not None else 0
