"""Webhooks through the real processes: a job's whole life reaches a receiver on loopback, signed; a
receiver that fails is retried; an event committed by an API killed before it sent it is still sent.

One webhook worker (`distillery webhook-worker`) and one job worker serve the whole module.
"""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_ports import free_port
from service_processes import start_api, start_webhook_worker, stop
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook
from webhook_receiver import ERROR_BODY, Receiver, running_receiver

from app.jobs.models import Job
from app.webhooks.calling import EXCERPT_BYTES
from app.webhooks.models import WebhookDelivery

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("worker_process", "webhook_worker")]

LENIENT = {"webhook_allow_http": True, "webhook_allow_private_addresses": True}
LENIENT_ENV = {
    "DISTILLERY_WEBHOOK_ALLOW_HTTP": "true",
    "DISTILLERY_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
    "DISTILLERY_WEBHOOK_BACKOFF_SECONDS": "0.2",
    "DISTILLERY_WEBHOOK_SWEEP_SECONDS": "1",
}
LIFE = {"job.queued", "job.running", "job.checkpoint", "job.succeeded"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def webhook_worker(
    settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """`distillery webhook-worker` as deployed: calls loopback, retries fast, sweeps every second."""
    log_path = tmp_path_factory.mktemp("webhooks") / "webhook-worker.log"
    process = start_webhook_worker({**os.environ, **LENIENT_ENV}, log_path=log_path)
    yield process
    if stop(process) not in (0, -15):
        print(log_path.read_text()[-5000:])


@pytest.fixture
def lenient_client(make_client: Callable[..., Any], settings: Any) -> Any:
    """A client of an API that accepts receivers on loopback over http."""
    return make_client(api_key=settings.dev_api_key, **LENIENT)


def register(client: Any, url: str, events: list[str] | None = None) -> tuple[str, Webhook]:
    """Register a receiver; returns its id and a verifier holding its secret."""
    created = client.post("/v1/webhooks", json={"url": url, "events": events})
    assert created.status_code == 201, created.text
    return created.json()["id"], Webhook(created.json()["secret"])


def verified(verifier: Webhook, requests: list[Any]) -> list[dict[str, Any]]:
    """The payloads of requests, each checked against its signature; the header id is the payload's."""
    payloads = [verifier.verify(request.body, request.headers) for request in requests]
    for request, payload in zip(requests, payloads, strict=True):
        assert request.headers["webhook-id"] == payload["id"]
    return payloads


def wait_for_types(receiver: Receiver, path: str, types: set[str], timeout: float = 60) -> list[Any]:
    """Wait until requests of every event type in `types` reached `path`; returns them all."""
    deadline = time.monotonic() + timeout
    while True:
        requests = receiver.on(path)
        seen = {request.body.split(b'"type":"')[1].split(b'"')[0].decode() for request in requests}
        if types <= seen:
            return requests
        assert time.monotonic() < deadline, f"{path} got {sorted(seen)}, not {sorted(types)}"
        time.sleep(0.1)


def test_a_receiver_gets_a_jobs_whole_life_signed_and_a_failing_one_is_retried(
    lenient_client: Any,
    receiver: Receiver,
    distill_spec: dict[str, Any],
    wait_for: Callable[..., dict[str, Any]],
) -> None:
    everything, everything_verifier = register(lenient_client, f"{receiver.url}/life")
    flaky, flaky_verifier = register(lenient_client, f"{receiver.url}/flaky", ["job.succeeded"])
    receiver.failures["/flaky"] = 2
    spec = {**distill_spec, "training": {**distill_spec["training"], "epochs": 1}}

    job = lenient_client.post("/v1/jobs", json=spec).json()
    assert wait_for(lenient_client, job["id"])["status"] == "succeeded"

    life = verified(everything_verifier, wait_for_types(receiver, "/life", LIFE))
    by_type = {payload["type"]: payload for payload in life}
    assert set(by_type) == LIFE
    assert {payload["data"]["job_id"] for payload in life} == {job["id"]}
    assert by_type["job.running"]["data"]["status"] == "running"
    assert by_type["job.succeeded"]["data"]["status"] == "succeeded"
    assert by_type["job.checkpoint"]["data"]["step"] > 0
    assert by_type["job.queued"]["created_at"] <= by_type["job.succeeded"]["created_at"]

    tries = receiver.wait_for("/flaky", 3)
    assert len({request.headers["webhook-id"] for request in tries}) == 1
    assert [payload["type"] for payload in verified(flaky_verifier, tries)] == ["job.succeeded"] * 3
    delivery = wait_for_delivery(lenient_client, flaky, lambda d: d["status"] == "succeeded")
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    excerpts = [a["response_excerpt"] for a in delivery["attempts"]]
    assert excerpts[0] == ERROR_BODY[:EXCERPT_BYTES].decode() and excerpts[2] == '{"ok": true}'
    assert all(a["latency_ms"] >= 0 and a["error"] is None for a in delivery["attempts"])
    assert wait_for_delivery(lenient_client, everything, lambda d: d["status"] == "succeeded")


def wait_for_delivery(
    client: Any, webhook_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    """Poll a webhook's newest delivery until `until` holds; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        data = client.get(f"/v1/webhooks/{webhook_id}/deliveries").json()["data"]
        if data and until(data[0]):
            return dict(data[0])
        assert time.monotonic() < deadline, data
        time.sleep(0.2)


def test_an_event_committed_by_an_api_killed_before_it_sent_it_is_delivered(
    lenient_client: Any,
    receiver: Receiver,
    distill_spec: dict[str, Any],
    db_session: Any,
    settings: Any,
    tmp_path: Path,
) -> None:
    webhook_id, verifier = register(lenient_client, f"{receiver.url}/killed")
    # A broker that accepts connections and never answers: the API hangs in its first send, after the commit.
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(16)
    env = {
        **os.environ,
        **LENIENT_ENV,
        "DISTILLERY_BROKER_URL": f"redis://127.0.0.1:{black_hole.getsockname()[1]}/0",
    }
    port = free_port()
    api = start_api(env, port=port, log_path=tmp_path / "api.log")
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"http://127.0.0.1:{port}/v1/jobs",
                json=distill_spec,
                headers={"Authorization": f"Bearer {settings.dev_api_key}"},
                timeout=2,
            )
    finally:
        api.send_signal(signal.SIGKILL)
        api.wait()
        black_hole.close()

    # The job and its delivery were committed before the API hung in its send.
    job_id = db_session.scalar(select(Job.id))
    committed = db_session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.job_id == job_id))
    assert job_id is not None and committed is not None
    [queued] = verified(verifier, receiver.wait_for("/killed", 1, timeout=30))
    assert queued["type"] == "job.queued" and queued["data"]["job_id"] == job_id
    assert queued["id"] == committed
    lenient_client.post(f"/v1/jobs/{job_id}/cancel")
    after = verified(verifier, wait_for_types(receiver, "/killed", {"job.cancelled"}, timeout=30))
    assert {payload["type"] for payload in after} == {"job.queued", "job.cancelled"}
    assert wait_for_delivery(lenient_client, webhook_id, lambda d: d["status"] == "succeeded")
