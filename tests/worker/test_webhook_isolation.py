"""Slow receivers slow only their own endpoints: against a real webhook worker, one receiver that drips
its answer and six that never answer, while another tenant's deliveries keep arriving within 2 s.

The worker runs with short settings: a 3 s deadline per try, one try at a time per endpoint, a circuit
that opens after 2 failed tries in a row for 3 s, and a sweep every half second.
"""

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from service_processes import start_webhook_worker, stop
from sqlalchemy import select
from webhook_receiver import Receiver, running_receiver

from app.jobs.models import Job, JobStatus
from app.jobs.webhook_events import record_job_event
from app.webhooks.models import EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.signing import new_secret

pytestmark = [pytest.mark.slow]

DEADLINE = 3.0
SLOW_ENV = {
    "DISTILLERY_WEBHOOK_ALLOW_HTTP": "true",
    "DISTILLERY_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
    "DISTILLERY_WEBHOOK_BACKOFF_SECONDS": "0.2",
    "DISTILLERY_WEBHOOK_SWEEP_SECONDS": "0.5",
    "DISTILLERY_WEBHOOK_DEADLINE_SECONDS": str(DEADLINE),
    "DISTILLERY_WEBHOOK_SENDERS": "10",
    "DISTILLERY_WEBHOOK_ENDPOINT_CONCURRENCY": "1",
    "DISTILLERY_WEBHOOK_CIRCUIT_FAILURES": "2",
    "DISTILLERY_WEBHOOK_CIRCUIT_OPEN_SECONDS": "3",
}
HANGING = [f"/hang{n}" for n in range(6)]
# The hanging receiver that answers again once its circuit has opened: its probe must close it.
RECOVERING = HANGING[0]
RUN_SECONDS, RECOVER_AT = 9.5, 7.0


@pytest.fixture(scope="module")
def webhook_worker(
    settings: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """`distillery webhook-worker` with short deadlines and a small circuit."""
    log_path = tmp_path_factory.mktemp("webhooks") / "webhook-worker.log"
    process = start_webhook_worker({**os.environ, **SLOW_ENV}, log_path=log_path)
    yield process
    if stop(process) not in (0, -15):
        print(log_path.read_text()[-5000:])


def tenant_with_receivers(session: Any, urls: list[str]) -> tuple[str, dict[str, str]]:
    """A tenant with one job and one endpoint per URL: returns the job's id and the endpoint ids by URL."""
    tenant = f"tenant-{secrets.token_hex(4)}"
    job = Job(tenant=tenant, spec={}, status=JobStatus.RUNNING)
    endpoints = {url: WebhookEndpoint(tenant=tenant, url=url, secret=new_secret()) for url in urls}
    session.add_all([job, *endpoints.values()])
    session.commit()
    return job.id, {url: endpoint.id for url, endpoint in endpoints.items()}


def send_event(session: Any, job_id: str) -> tuple[list[str], float]:
    """Commit one checkpoint event of the job (the outbox queues its deliveries): their ids, and when."""
    at = time.monotonic()
    delivery_ids = record_job_event(session, job_id=job_id, event_type=EventType.JOB_CHECKPOINT)
    session.commit()
    return delivery_ids, at


def arrival_seconds(receiver: Receiver, sent: dict[str, float], timeout: float = 5) -> dict[str, float]:
    """Seconds from each delivery's commit to its arrival at the receiver, once all have arrived."""
    deadline = time.monotonic() + timeout
    while True:
        arrived = {request.headers["webhook-id"]: request.at for request in receiver.received}
        if set(sent) <= set(arrived) or time.monotonic() > deadline:
            return {
                delivery_id: arrived.get(delivery_id, float("inf")) - at for delivery_id, at in sent.items()
            }
        time.sleep(0.05)


def run_load(
    session: Any, slow: Receiver, slow_job: str, other_job: str
) -> tuple[dict[str, float], dict[str, int]]:
    """Events for both tenants for RUN_SECONDS; the slow tenant gets 3 at once, then one every 2 s.

    Returns when each of the other tenant's deliveries was committed, and how many tries each hanging
    receiver had got when the recovering one starts answering."""
    sent: dict[str, float] = {}
    for _ in range(3):
        send_event(session, slow_job)
    start = time.monotonic()
    next_slow, tries_while_open = start + 2, {}
    while (now := time.monotonic()) - start < RUN_SECONDS:
        if now >= next_slow:
            send_event(session, slow_job)
            next_slow += 2
        if not tries_while_open and now - start >= RECOVER_AT:
            tries_while_open = {path: len(slow.on(path)) for path in HANGING}
            slow.hangs.discard(RECOVERING)
        [delivery_id], at = send_event(session, other_job)
        sent[delivery_id] = at
        time.sleep(0.4)
    return sent, tries_while_open


def test_a_dripping_receiver_and_six_hanging_ones_slow_only_their_own_endpoints(
    db_session: Any, webhook_worker: subprocess.Popen[bytes]
) -> None:
    with running_receiver() as slow, running_receiver() as healthy:
        slow.drips["/drip"] = 2.0
        slow.hangs.update(HANGING)
        slow_job, slow_endpoints = tenant_with_receivers(
            db_session, [f"{slow.url}{p}" for p in ["/drip", *HANGING]]
        )
        other_job, _ = tenant_with_receivers(db_session, [f"{healthy.url}/other"])
        send_event(db_session, other_job)
        healthy.wait_for("/other", 1, timeout=30)  # the worker is up

        sent, tries_while_open = run_load(db_session, slow, slow_job, other_job)
        latencies = arrival_seconds(healthy, sent)
        recovering = slow_endpoints[f"{slow.url}{RECOVERING}"]
        recovered = wait_until_delivered(db_session, recovering)
        drip_attempts = attempts_of(db_session, slow_endpoints[f"{slow.url}/drip"])

    assert max(latencies.values()) < 2.0, sorted(latencies.values())
    assert len(latencies) >= 18
    # Two failed tries opened each circuit; while open, its deliveries waited without a try.
    assert tries_while_open == {path: 2 for path in HANGING}
    assert recovered, "the probe did not close the recovering endpoint's circuit"
    # No try outlived its deadline, and none in flight was sent again by the sweep.
    assert drip_attempts and all(a.error.startswith("DeadlinePassed") for a in drip_attempts), [
        a.error for a in drip_attempts
    ]
    assert max(a.latency_ms for a in drip_attempts) <= DEADLINE * 1000 + 500
    assert slow.overlaps == [] and healthy.overlaps == []
    hanging = [slow_endpoints[f"{slow.url}{path}"] for path in HANGING[1:]]
    assert all(db_session.get(WebhookEndpoint, e).circuit_open_until is not None for e in hanging)
    assert statuses_of(db_session, [*hanging, slow_endpoints[f"{slow.url}/drip"]]) == {"pending"}


def wait_until_delivered(session: Any, endpoint_id: str, timeout: float = 10) -> bool:
    """Whether every delivery to the endpoint succeeded within `timeout`."""
    deadline = time.monotonic() + timeout
    while statuses_of(session, [endpoint_id]) != {"succeeded"}:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    session.expire_all()
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    return bool(endpoint.circuit_open_until is None and endpoint.consecutive_failures == 0)


def statuses_of(session: Any, endpoint_ids: list[str]) -> set[str]:
    session.expire_all()
    query = select(WebhookDelivery.status).where(WebhookDelivery.endpoint_id.in_(endpoint_ids))
    return set(session.scalars(query))


def attempts_of(session: Any, endpoint_id: str) -> list[WebhookAttempt]:
    session.expire_all()
    return list(
        session.scalars(
            select(WebhookAttempt)
            .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
        )
    )
