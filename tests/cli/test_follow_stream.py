"""Following a job: the CLI reads the event stream, and polls where a server or proxy cannot stream."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cli_fake_api import FakeApi, make_job, page
from typer.testing import CliRunner

from distillery.cli.main import app
from distillery.cli.state import CliState

EVENTS = [
    {"id": 1, "type": "status", "level": "info", "message": "job queued", "created_at": 1_700_000_000},
    {
        "id": 2,
        "type": "message",
        "level": "warning",
        "message": "slow tokenizer",
        "created_at": 1_700_000_001,
    },
    {"id": 3, "type": "status", "level": "info", "message": "job succeeded", "created_at": 1_700_000_002},
]


def sse_body(events: list[dict[str, Any]]) -> bytes:
    """The stream as the server sends it: a keep-alive comment, then one message per event."""
    messages = [": keep-alive\n\n"] + [
        f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in events
    ]
    return "".join(messages).encode()


def run_events(api: FakeApi) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["events", "job_e", "--follow"], obj=CliState(client=api.client()), env={"COLUMNS": "200"}
    )
    return result.exit_code, result.stdout


def test_events_follow_reads_the_stream_to_its_end_without_polling(api: FakeApi) -> None:
    stream = sse_body(EVENTS)
    api.route(
        "GET",
        "/v1/jobs/job_e/events/stream",
        lambda _r, _m: httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=stream),
    )
    api.route("GET", "/v1/jobs/job_e", make_job("job_e", "succeeded"))
    api.route("GET", "/v1/jobs/job_e/events", page([]))

    code, out = run_events(api)

    assert code == 0
    assert [line.split()[4:] for line in out.splitlines()] == [
        ["job", "queued"],
        ["slow", "tokenizer"],
        ["job", "succeeded"],
    ]
    # One stream, then the job's status to tell its end from a server going away, and a last look.
    assert [(r.url.path, r.url.params.get("after")) for r in api.requests] == [
        ("/v1/jobs/job_e/events/stream", None),
        ("/v1/jobs/job_e", None),
        ("/v1/jobs/job_e/events", "3"),
    ]


@pytest.mark.parametrize(
    "no_stream",
    [
        httpx.Response(405, json={"detail": "Method Not Allowed"}),  # an older server
        httpx.Response(200, headers={"Content-Type": "text/html"}, content=b"<html>login</html>"),  # a proxy
    ],
    ids=["older-server", "proxy-page"],
)
def test_events_follow_falls_back_to_polling_where_there_is_no_stream(
    api: FakeApi, no_stream: httpx.Response
) -> None:
    statuses = iter(["running", "succeeded"])
    batches = iter([EVENTS[:2], EVENTS[2:]])
    api.route("GET", "/v1/jobs/job_e/events/stream", lambda _r, _m: no_stream)
    api.route(
        "GET", "/v1/jobs/job_e", lambda _r, _m: httpx.Response(200, json=make_job("job_e", next(statuses)))
    )
    api.route("GET", "/v1/jobs/job_e/events", lambda _r, _m: httpx.Response(200, json=page(next(batches))))

    code, out = run_events(api)

    assert code == 0
    assert len(out.splitlines()) == 3 and "job succeeded" in out.splitlines()[-1]
    event_cursors = [r.url.params.get("after") for r in api.requests if r.url.path.endswith("/events")]
    assert event_cursors == [None, "2"]


def test_a_dropped_stream_is_resumed_from_the_last_event_received(api: FakeApi) -> None:
    class Dropped(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield sse_body(EVENTS[:1]) + b"id: 2\nevent: mess"  # the second message is cut short
            raise httpx.ReadError("connection reset by peer")

    answers = iter(
        [
            httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=Dropped()),
            httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=sse_body(EVENTS[1:])),
        ]
    )
    api.route("GET", "/v1/jobs/job_e/events/stream", lambda _r, _m: next(answers))
    api.route("GET", "/v1/jobs/job_e", make_job("job_e", "succeeded"))
    api.route("GET", "/v1/jobs/job_e/events", page([]))

    seen = [event["id"] for event in api.client().stream_events("job_e")]

    assert seen == [1, 2, 3]
    streams = [r for r in api.requests if r.url.path.endswith("/stream")]
    assert [r.headers.get("Last-Event-ID") for r in streams] == [None, "1"]
