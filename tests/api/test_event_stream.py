"""A job's live event stream, served by a real uvicorn process on the test database.

Events are appended to the database while the stream is open, as a worker appends them.
"""

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.arrange import add_events, finish_job
from api.conftest import LiveApi
from distillery.client import DistilleryClient

STREAM_TIMEOUT = httpx.Timeout(10.0)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def messages(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """SSE messages as field dicts; a comment-only block comes as {"comment": ...}."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            fields["comment"] = line[1:].strip()
        else:
            name, _, value = line.partition(": ")
            fields[name] = value
    if fields:
        yield fields


def scrape(live_api: LiveApi) -> dict[str, float]:
    """The API process's metric samples, keyed 'name{label="value",...}'."""
    text = httpx.get(f"{live_api.url}/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_stream_resumes_from_last_event_id_keeps_alive_and_ends_with_the_job(
    live_api: LiveApi, db_session: Any, create_job: Callable[..., dict[str, Any]], settings: Any
) -> None:
    job_id = create_job()["id"]  # event 1: queued
    add_events(db_session, job_id, 2)  # events 2 and 3
    url = f"{live_api.url}/v1/jobs/{job_id}/events/stream"
    headers = bearer(settings.dev_api_key)
    with httpx.Client(timeout=STREAM_TIMEOUT) as http:
        with http.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = messages(response.iter_lines())
            first = [next(stream), next(stream)]
        # The client went away: the server stops its stream.
        wait_for(lambda: scrape(live_api)["distillery_event_streams_open"] == 0)
        add_events(db_session, job_id, 1)  # event 4, appended while no one listens

        with http.stream("GET", url, headers={**headers, "Last-Event-ID": "2"}) as response:
            stream = messages(response.iter_lines())
            resumed = [next(stream), next(stream)]
            assert next(stream) == {"comment": "keep-alive"}  # nothing new: the stream keeps alive
            # Open and idle, the stream holds no database connection (a poll may be caught mid-query).
            samples = [scrape(live_api) for _ in range(5)]
            assert all(sample["distillery_event_streams_open"] == 1 for sample in samples)
            assert min(s['distillery_database_pool_connections{state="in_use"}'] for s in samples) == 0
            finish_job(db_session, job_id)  # event 5, the last
            rest = [message for message in stream if "comment" not in message]
        listed = http.get(f"{live_api.url}/v1/jobs/{job_id}/events", headers=headers).json()["data"]

    received = first + resumed + rest
    assert [message["id"] for message in received] == ["1", "2", "3", "4", "5"]
    assert [json.loads(message["data"]) for message in received] == listed
    assert [message["event"] for message in received] == [event["type"] for event in listed]
    assert received[-1]["event"] == "status" and listed[-1]["data"] == {"status": "succeeded"}


class DroppingTransport(httpx.HTTPTransport):
    """The real network, except that each of the first `drops` event streams breaks mid-message."""

    def __init__(self, drops: int) -> None:
        super().__init__()
        self.drops = drops
        self.last_event_ids: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not request.url.path.endswith("/events/stream"):
            return response
        self.last_event_ids.append(request.headers.get("Last-Event-ID"))
        if len(self.last_event_ids) > self.drops:
            return response
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=BrokenStream(response.stream),
            extensions=response.extensions,
        )


class BrokenStream(httpx.SyncByteStream):
    """Passes bytes on until a second message has begun, delivers half of that read, then fails."""

    def __init__(self, stream: httpx.SyncByteStream) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[bytes]:
        begun = 0
        for chunk in self.stream:
            begun += chunk.count(b"data: ")
            if begun >= 2:
                yield chunk[: len(chunk) // 2]
                raise httpx.ReadError("connection reset by peer")
            yield chunk

    def close(self) -> None:
        self.stream.close()


def test_the_client_resumes_dropped_streams_without_missing_or_repeating_an_event(
    live_api: LiveApi, db_session: Any, create_job: Callable[..., dict[str, Any]], settings: Any
) -> None:
    job_id = create_job()["id"]

    def work() -> None:
        for _ in range(12):
            add_events(db_session, job_id, 1)
            time.sleep(0.05)
        finish_job(db_session, job_id)

    worker = threading.Thread(target=work)
    transport = DroppingTransport(drops=2)
    with DistilleryClient(live_api.url, api_key=settings.dev_api_key, transport=transport) as client:
        worker.start()
        try:
            seen = [event["id"] for event in client.stream_events(job_id)]
        finally:
            worker.join()

    assert seen == list(range(1, 15))  # queued, 12 steps, succeeded: each once, in order
    # Two broken connections, each resumed from the last whole event received before it broke.
    assert len(transport.last_event_ids) == 3 and transport.last_event_ids[0] is None
    resumed_after = [int(after or 0) for after in transport.last_event_ids[1:]]
    assert resumed_after == sorted(resumed_after) and resumed_after[-1] < 14


def test_a_finished_jobs_stream_starts_after_the_greater_of_after_and_last_event_id_and_ignores_non_ids(
    client: Any, db_session: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    job_id = create_job()["id"]
    add_events(db_session, job_id, 3)
    finish_job(db_session, job_id)  # events 1 to 5
    url = f"/v1/jobs/{job_id}/events/stream"

    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [message["id"] for message in messages(iter(response.text.splitlines())) if "id" in message]

    assert ids(client.get(url)) == ["1", "2", "3", "4", "5"]
    assert ids(client.get(url, params={"after": 3})) == ["4", "5"]
    assert ids(client.get(url, params={"after": 1}, headers={"Last-Event-ID": "4"})) == ["5"]
    # A value that is not an event id is ignored, as an EventSource ignores one (the SSE standard).
    for not_an_id in ("null", "not-a-number", "-1", "99999999999", ""):
        assert ids(client.get(url, params={"after": 2}, headers={"Last-Event-ID": not_an_id})) == [
            "3",
            "4",
            "5",
        ]


def test_another_tenants_job_has_no_stream(
    other_tenant_client: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    job_id = create_job()["id"]

    response = other_tenant_client.get(f"/v1/jobs/{job_id}/events/stream")

    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_head_answers_the_streams_headers_without_running_it(
    client: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    job_id = create_job()["id"]  # queued: its stream would not end
    answers: list[Any] = []
    # In a thread, so that a stream running on would fail the test instead of hanging it.
    head = threading.Thread(
        target=lambda: answers.append(client.head(f"/v1/jobs/{job_id}/events/stream")), daemon=True
    )
    head.start()
    head.join(timeout=10)

    assert answers, "HEAD ran the stream"
    response = answers[0]
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.content == b""
