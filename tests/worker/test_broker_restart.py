"""A Redis restart with webhook tries and a job in flight: both workers keep running and nothing is lost.

A throwaway redis-server without persistence (its restart loses every message it held) is the broker of a
real webhook worker (`distillery webhook-worker`) and a real job worker (`celery -A worker worker`); the
database is the test Postgres, the receiver an HTTP server on loopback.
"""

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from service_processes import start_webhook_worker, start_worker, stop
from throwaway_redis import RedisServer, throwaway_redis
from webhook_receiver import Receiver, running_receiver

from app.core.base import utcnow
from app.core.celery import SEND_WEBHOOK_TASK, make_celery
from app.jobs.models import Job
from app.jobs.queue import publish_job
from app.jobs.schemas import JobCreate
from app.jobs.service import create_job
from app.webhooks.models import WebhookDelivery, WebhookEndpoint
from app.webhooks.queue import publish_delivery
from app.webhooks.signing import new_secret

pytestmark = pytest.mark.slow
SLOW_ANSWER_SECONDS = 1.5
COUNTDOWN_SECONDS = 2.0
DELIVERIES_PER_ENDPOINT = 4


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    """The workers' broker, of this test's own."""
    with throwaway_redis(tmp_path) as server:
        yield server


@contextmanager
def workers(env: dict[str, str], queue_name: str, logs: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Both workers on the broker of `env`, started at once; their logs are shown if a check fails."""
    processes = {
        "webhooks": start_webhook_worker(env, log_path=logs / "webhooks.log"),
        # Room for a second job: the worker listens for more while the first one's message is not acked.
        "jobs": start_worker(env, queue_name=queue_name, log_path=logs / "jobs.log", concurrency=2),
    }
    try:
        yield processes
    except BaseException:
        for name in processes:
            print(f"--- {name} worker log ---\n{(logs / f'{name}.log').read_text(errors='replace')[-6000:]}")
        raise
    finally:
        for process in processes.values():
            stop(process)


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll `check` until it returns something true; returns it."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


def add_deliveries(db_session: Any, url: str, *, due_in: float = 0.0) -> list[str]:
    """A receiver of tenant `hooks` and deliveries to it, due `due_in` seconds from now."""
    endpoint = WebhookEndpoint(tenant="hooks", url=url, events=None, secret=new_secret())
    db_session.add(endpoint)
    db_session.flush()
    due = utcnow() + timedelta(seconds=due_in)
    deliveries = [
        WebhookDelivery(
            endpoint_id=endpoint.id,
            tenant="hooks",
            event_type="job.succeeded",
            payload={"type": "job.succeeded", "data": {"number": number}},
            next_attempt_at=due,
        )
        for number in range(DELIVERIES_PER_ENDPOINT)
    ]
    db_session.add_all(deliveries)
    db_session.commit()
    return [delivery.id for delivery in deliveries]


def held_by_a_worker(broker: RedisServer, delivery_ids: list[str]) -> bool:
    """Whether every one of these deliveries has a message a worker took and has not acked yet."""
    client = redis.Redis.from_url(broker.url)
    try:
        held = [json.loads(raw)[0]["headers"] for raw in client.hvals("unacked")]
    finally:
        client.close()
    sent = " ".join(headers["argsrepr"] for headers in held if headers["task"] == SEND_WEBHOOK_TASK)
    return all(delivery_id in sent for delivery_id in delivery_ids)


def job_of(db_session: Any, job_id: str) -> Job:
    """The job's row as the workers last committed it."""
    db_session.expire_all()
    job: Job = db_session.get(Job, job_id)
    return job


def received_ids(receiver: Receiver) -> list[str]:
    """The delivery id of every request the receiver got, duplicates kept."""
    with receiver.lock:
        return sorted(request.headers["webhook-id"] for request in receiver.received)


def test_a_redis_restart_with_tries_and_a_job_in_flight_leaves_both_workers_running_and_loses_nothing(
    settings: Any, db_session: Any, distill_spec: dict[str, Any], broker: RedisServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DISTILLERY_BROKER_URL": broker.url,
        "DISTILLERY_WEBHOOK_ALLOW_HTTP": "true",
        "DISTILLERY_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "DISTILLERY_WEBHOOK_SWEEP_SECONDS": "1",
        "DISTILLERY_HEARTBEAT_SECONDS": "1",
        "DISTILLERY_RECONCILE_SECONDS": "3600",
    }
    app = make_celery(settings.model_copy(update={"broker_url": broker.url}))
    with running_receiver() as receiver, workers(env, settings.queue_name, tmp_path) as processes:
        receiver.delays["/slow"] = SLOW_ANSWER_SECONDS
        spec = {**distill_spec, "training": {**distill_spec["training"], "epochs": 1}}
        job, _ = create_job(
            session=db_session, tenant="default", job_in=JobCreate.model_validate(spec), settings=settings
        )
        db_session.commit()
        publish_job(job.id, app=app)
        slow = add_deliveries(db_session, f"{receiver.url}/slow")
        for delivery_id in slow:
            publish_delivery(delivery_id, app=app)
        receiver.wait_for("/slow", 1)
        # Retries waiting for their countdown: the webhook worker holds their messages, not yet acked.
        later = add_deliveries(db_session, f"{receiver.url}/later", due_in=COUNTDOWN_SECONDS)
        for delivery_id in later:
            publish_delivery(delivery_id, countdown=COUNTDOWN_SECONDS, app=app)
        wait_until(lambda: held_by_a_worker(broker, later), "the webhook worker to take the retries")
        wait_until(lambda: job_of(db_session, job.id).status == "running", "the job to run")

        broker.stop()  # mid-try, mid-job, with messages held: every message is lost
        time.sleep(0.5)
        broker.start()

        wait_until(lambda: received_ids(receiver) == sorted(slow + later), "every delivery, once each")
        wait_until(lambda: job_of(db_session, job.id).status in ("succeeded", "failed"), "the job")
        assert (job_of(db_session, job.id).status, job_of(db_session, job.id).attempts) == ("succeeded", 1)
        # The job worker consumes again: a message for the finished job is taken and counted.
        deliveries = job_of(db_session, job.id).deliveries
        publish_job(job.id, app=app)
        wait_until(lambda: job_of(db_session, job.id).deliveries > deliveries, "the job worker to consume")
        assert [process.poll() for process in processes.values()] == [None, None]  # both still running
    for log in tmp_path.glob("*.log"):
        assert "Unrecoverable error" not in log.read_text(errors="replace"), log.name
