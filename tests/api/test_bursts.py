"""Bursts on a real uvicorn process and Postgres: hundreds of reads and streams at once, and no 5xx.

The API here lets an unwoken stream sleep 30 s: an event that reaches 500 streams sooner was delivered
by the database's notification, not by polling.
"""

import asyncio
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from local_ports import free_port
from service_processes import start_api, stop

from api.arrange import finish_job
from app.auth.service import create_key, revoke_key
from app.jobs.events import append_event

READERS = 200
STREAMS = 500
EVENTS_WRITTEN = 5
POLL_SECONDS = 60.0
NOTIFIED_WITHIN_SECONDS = 15.0
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def burst_api(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A uvicorn API on the test database whose streams poll rarely, so only notifications are fast."""
    port = free_port()
    env = {
        **os.environ,
        "DISTILLERY_EVENT_STREAM_POLL_SECONDS": str(POLL_SECONDS),
        "DISTILLERY_EVENT_STREAM_KEEP_ALIVE_SECONDS": "15",
    }
    process = start_api(env, port=port, log_path=tmp_path_factory.mktemp("burst-api") / "api.log")
    yield f"http://127.0.0.1:{port}"
    stop(process)


@pytest.fixture
def key(db_session: Any) -> str:
    """A real API key of the tenant the job fixtures create jobs for."""
    token = create_key(session=db_session, tenant="default", name="bursts")
    db_session.commit()
    return token


def test_reads_and_streams_in_bursts_answer_no_5xx_and_idle_streams_hold_no_connection(
    burst_api: str, key: str, db_session: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    job_id = create_job()["id"]
    report = asyncio.run(_bursts(burst_api, key, job_id, db_session))
    print(json.dumps(report, indent=2))

    assert report["reads"]["statuses"] == {"200": READERS}
    assert report["streams_open"] == STREAMS and report["pool_in_use_with_streams_idle"] == 0
    assert report["together"]["statuses"] == {"200": READERS}
    assert report["streams_complete"] == STREAMS, report["stream_failures"][:3]
    # Unwoken, a stream reads again only after 30 s: reaching all 500 sooner is the notifications' doing.
    assert report["seconds_to_last_event_everywhere"] < NOTIFIED_WITHIN_SECONDS


def test_revoking_a_key_closes_its_open_streams_at_once(
    burst_api: str, key: str, db_session: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    job_id = create_job()["id"]  # queued: its stream would not end by itself
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(base_url=burst_api, headers=headers, timeout=10) as client,
        client.stream("GET", f"/v1/jobs/{job_id}/events/stream") as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("id:")) == "id: 1"
        key_id = next(row.id for row in _keys(db_session) if row.name == "bursts")
        revoke_key(session=db_session, key_id=key_id)
        db_session.commit()
        revoked_at = time.monotonic()
        for _ in lines:  # drains until the server closes the stream
            pass
        closed_after = time.monotonic() - revoked_at
        reopened = client.get(f"/v1/jobs/{job_id}/events/stream")

    assert closed_after < 2.0, f"closed {closed_after:.2f}s after the revocation (poll: {POLL_SECONDS}s)"
    assert reopened.status_code == 401


def test_a_stream_still_gets_its_events_after_the_listener_loses_its_connection(
    burst_api: str, key: str, db_session: Any, create_job: Callable[..., dict[str, Any]]
) -> None:
    job_id = create_job()["id"]
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(base_url=burst_api, headers=headers, timeout=20) as client,
        client.stream("GET", f"/v1/jobs/{job_id}/events/stream") as stream,
    ):
        ids = (line for line in stream.iter_lines() if line.startswith("id:"))
        assert next(ids) == "id: 1"
        assert _terminate_listeners(db_session) >= 1
        append_event(db_session, job_id=job_id, message="written while the listener reconnects")
        db_session.commit()
        written_at = time.monotonic()
        assert next(ids) == "id: 2"
        seen_after = time.monotonic() - written_at

    # The reconnected listener wakes every stream once: far sooner than the 30 s an unwoken one sleeps.
    assert seen_after < 10.0, f"seen {seen_after:.2f}s after it was written"


def _terminate_listeners(db_session: Any) -> int:
    """End the `LISTEN` connections of the API processes on this database, as a network cut would."""
    from sqlalchemy import text

    return len(
        db_session.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )
        ).all()
    )


def _keys(db_session: Any) -> list[Any]:
    from app.auth.service import list_keys

    return list_keys(session=db_session, tenant="default")


async def _bursts(url: str, key: str, job_id: str, db_session: Any) -> dict[str, Any]:
    """200 reads at once; then 500 streams at once; then 200 reads while a job writes to the streams."""
    headers = {"Authorization": f"Bearer {key}"}
    # A connection per request, as many clients would open: none is reused after the server timed it out.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:
        report: dict[str, Any] = {"reads": await _reads(client)}
        opened = [asyncio.Event() for _ in range(STREAMS)]
        streams = [asyncio.create_task(_follow(client, job_id, event)) for event in opened]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened)), timeout=120)
        await asyncio.sleep(0.5)
        metrics = (await client.get("/metrics")).text
        report["streams_open"] = _metric(metrics, "distillery_event_streams_open")
        report["pool_in_use_with_streams_idle"] = _metric(
            metrics, 'distillery_database_pool_connections{state="in_use"}'
        )
        reads = asyncio.create_task(_reads(client))
        finished_at = await asyncio.to_thread(_write_events, db_session, job_id)
        report["together"] = await reads
        followed = await asyncio.wait_for(asyncio.gather(*streams), timeout=120)
    expected = list(range(1, EVENTS_WRITTEN + 3))  # queued, the written events, succeeded
    complete = [result for result in followed if result["ids"] == expected]
    report["streams_complete"] = len(complete)
    report["stream_failures"] = [result for result in followed if result["ids"] != expected]
    report["seconds_to_last_event_everywhere"] = round(
        max(result["last_event_at"] for result in complete) - finished_at, 3
    )
    return report


async def _reads(client: httpx.AsyncClient) -> dict[str, Any]:
    """`READERS` concurrent job lists: their statuses and latency percentiles."""

    async def one() -> tuple[int, float]:
        started = time.monotonic()
        response = await client.get("/v1/jobs")
        return response.status_code, time.monotonic() - started

    results = await asyncio.gather(*(one() for _ in range(READERS)))
    statuses: dict[str, int] = {}
    for status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    latencies = sorted(seconds for _, seconds in results)
    return {
        "statuses": statuses,
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99) - 1], 1),
    }


async def _follow(client: httpx.AsyncClient, job_id: str, opened: asyncio.Event) -> dict[str, Any]:
    """Read one stream to its end: the event ids seen, and when the last one came."""
    ids: list[int] = []
    last_event_at = 0.0
    try:
        async with client.stream("GET", f"/v1/jobs/{job_id}/events/stream") as response:
            if response.status_code != 200:
                opened.set()
                return {"ids": ids, "status": response.status_code, "last_event_at": 0.0}
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    ids.append(int(line.removeprefix("id:").strip()))
                    last_event_at = time.monotonic()
                    opened.set()
    except httpx.HTTPError as error:
        opened.set()
        return {"ids": ids, "error": repr(error), "last_event_at": last_event_at}
    return {"ids": ids, "status": 200, "last_event_at": last_event_at}


def _write_events(db_session: Any, job_id: str) -> float:
    """Append events as a worker does, a commit each, then finish the job; when it finished."""
    for step in range(EVENTS_WRITTEN):
        append_event(db_session, job_id=job_id, message=f"step {step}")
        db_session.commit()
        time.sleep(0.1)
    finish_job(db_session, job_id)
    return time.monotonic()


def _metric(text: str, name: str) -> float:
    """One sample's value from Prometheus text."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, flags=re.MULTILINE)
    assert match is not None, f"{name} is not in /metrics"
    return float(match.group(1))
