"""The reconciler re-sends only queued jobs whose message the broker lost, once each, within its limits."""

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from app.core.base import utcnow
from app.core.celery import make_celery
from app.jobs.models import Job, JobStatus
from app.jobs.queue import publish_job
from bench.service.local_servers import RedisServer
from worker.broker_contents import held_messages
from worker.reconciler import reconcile_once

GRACE = 1.0
RABBITMQ_URL = os.environ.get("DISTILLERY_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture(autouse=True)
def live_worker(no_workers: None) -> None:
    """A reconciler runs in a registered worker, which can serve these jobs: none waits for resources."""
    from app.workers.records import WorkerCapacity
    from app.workers.registry import register

    register(
        node="reconciling@test",
        capacity=WorkerCapacity(host="test", accelerator="cpu", devices=1, concurrency=1),
    )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def insert_jobs(db_session: Any, count: int, **columns: Any) -> list[str]:
    """Queued job rows, oldest first, as if their publish had been lost."""
    start = utcnow() - timedelta(minutes=10)
    jobs = [
        Job(tenant="default", spec={}, queued_at=start + timedelta(seconds=i), **columns)
        for i in range(count)
    ]
    db_session.add_all(jobs)
    db_session.commit()
    return [job.id for job in jobs]


def queued_task_ids(url: str, queue: str) -> list[str]:
    """The task ids of the messages waiting in a Redis queue."""
    client = redis.Redis.from_url(url)
    try:
        return [json.loads(raw)["headers"]["id"] for raw in client.lrange(queue, 0, -1)]
    finally:
        client.close()


def publish_ids(db_session: Any, job_ids: list[str]) -> dict[str, str | None]:
    db_session.expire_all()
    rows = db_session.execute(select(Job.id, Job.publish_id).where(Job.id.in_(job_ids))).all()
    return dict(rows)


def test_after_a_broker_restart_each_lost_job_is_republished_once_and_held_ones_are_not(
    db_session: Any, settings: Any, broker: RedisServer
) -> None:
    settings = settings.model_copy(update={"broker_url": broker.url, "republish_min_interval_seconds": GRACE})
    app = make_celery(settings)
    lost = insert_jobs(db_session, 4)
    cancelled = insert_jobs(db_session, 1, status=JobStatus.CANCELLED)
    for job_id in lost + cancelled:
        publish_job(job_id, app=app)
    assert len(queued_task_ids(broker.url, settings.queue_name)) == 5

    broker.restart()
    taken, *held = insert_jobs(db_session, 3)
    for job_id in [taken, *held]:
        publish_job(job_id, app=app)
    messages_before = publish_ids(db_session, [taken, *held])
    with app.connection_for_read() as connection:  # a worker takes one and has not acked it yet
        assert connection.default_channel.basic_get(settings.queue_name, no_ack=False) is not None
        time.sleep(GRACE + 0.2)

        assert sorted(reconcile_once(settings, app=app)) == sorted(lost)
        assert reconcile_once(settings, app=app) == []
        time.sleep(GRACE + 0.2)
        assert reconcile_once(settings, app=app) == []

    on_queue = queued_task_ids(broker.url, settings.queue_name)
    assert sorted(on_queue) == sorted(publish_ids(db_session, lost + held + [taken]).values())
    assert publish_ids(db_session, [taken, *held]) == messages_before


def test_a_pass_sends_at_most_the_cap_and_a_job_at_most_once_per_interval(
    db_session: Any, settings: Any, redis_client: Any
) -> None:
    settings = settings.model_copy(
        update={"republish_max_per_pass": 2, "republish_min_interval_seconds": 2.0}
    )
    jobs = insert_jobs(db_session, 5)

    passes = [reconcile_once(settings), reconcile_once(settings), reconcile_once(settings)]

    assert passes == [jobs[:2], jobs[2:4], jobs[4:]]
    redis_client.delete(settings.queue_name)  # the broker loses every message
    assert reconcile_once(settings) == []  # all were sent less than the interval ago
    time.sleep(2.2)
    assert reconcile_once(settings) == jobs[:2]


def test_reconcilers_running_at_once_send_each_lost_job_once(db_session: Any, settings: Any) -> None:
    jobs = insert_jobs(db_session, 30)
    results: list[list[str]] = []

    def run() -> None:
        results.append(reconcile_once(settings))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    sent = [job_id for result in results for job_id in result]
    assert sorted(sent) == sorted(jobs)


def test_on_the_embedded_broker_only_a_job_whose_message_is_gone_is_resent(
    db_session: Any, settings: Any, tmp_path: Path
) -> None:
    broker_file = tmp_path / "broker.db"
    update = {"broker_url": f"sqla+sqlite:///{broker_file}", "republish_min_interval_seconds": GRACE}
    settings = settings.model_copy(update=update)
    app = make_celery(settings)
    taken, waiting, lost = insert_jobs(db_session, 3)
    for job_id in (taken, waiting, lost):
        publish_job(job_id, app=app)
    with app.connection_for_read() as connection:  # a worker takes one and has not acked it yet
        message = connection.default_channel.basic_get(settings.queue_name, no_ack=False)
        assert message.headers["id"] == publish_ids(db_session, [taken])[taken]
        with sqlite3.connect(broker_file) as broker:  # the broker loses another
            gone = broker.execute(
                "DELETE FROM kombu_message WHERE payload LIKE ?",
                (f"%{publish_ids(db_session, [lost])[lost]}%",),
            )
            assert gone.rowcount == 1
        time.sleep(GRACE + 0.2)

        assert reconcile_once(settings, app=app) == [lost]


def test_on_a_broker_that_cannot_be_inspected_a_job_is_resent_by_age_only(
    db_session: Any, settings: Any
) -> None:
    update = {
        "broker_url": RABBITMQ_URL,
        "requeue_after_seconds": 60.0,
        "republish_min_interval_seconds": GRACE,
    }
    settings = settings.model_copy(update=update)
    app = make_celery(settings)
    waited_long, just_sent = insert_jobs(db_session, 2)
    try:
        publish_job(just_sent, app=app)
        time.sleep(GRACE + 0.2)

        assert held_messages(app, queue=settings.queue_name, delivered_within_seconds=60) is None
        assert reconcile_once(settings, app=app) == [waited_long]
        assert reconcile_once(settings, app=app) == []
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(settings.queue_name)
