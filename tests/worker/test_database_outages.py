"""Jobs survive database outages: a blip mid-training costs nothing, a longer one requeues and resumes.

The API (uvicorn) and a worker (celery) run as separate processes on a Postgres server of this module's
own, which the tests stop and start; the broker is the test Redis, on a queue of the module's own.
"""

import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_ports import free_port
from service_processes import start_api, start_worker, stop
from throwaway_postgres import ThrowawayPostgres, throwaway_postgres
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows

pytestmark = pytest.mark.slow
OUTAGE_SECONDS = 5
LEASE_SECONDS = 15
TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class Stack:
    """The service on the throwaway database: a client of its API, its worker's log and its artifacts."""

    client: httpx.Client
    server: ThrowawayPostgres
    env: dict[str, str]
    worker: subprocess.Popen[bytes]
    worker_log: Path
    artifacts: Path
    train_file: str

    def restart_worker(self, **settings: str) -> None:
        """Replace the (idle) worker by one with some settings changed."""
        stop(self.worker)
        self.env = {**self.env, **settings}
        self.worker_log = self.worker_log.with_name(
            f"worker-{len(list(self.worker_log.parent.glob('*.log')))}.log"
        )
        self.worker = start_worker(
            self.env, queue_name=self.env["DISTILLERY_QUEUE_NAME"], log_path=self.worker_log
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import redis

    from app.core.config import Settings
    from app.main import upgrade_database

    data_dir = tmp_path_factory.mktemp("outage-stack")
    save_tiny_bert_classifier(data_dir / "models" / "tiny-teacher")
    queue_name = f"distillery.test.outage.{secrets.token_hex(4)}"
    with throwaway_postgres() as server:
        database_url = server.create_database("distillery")
        upgrade_database(Settings(database_url=database_url, data_dir=data_dir))
        env = {
            **os.environ,
            "DISTILLERY_DATABASE_URL": database_url,
            "DISTILLERY_DATA_DIR": str(data_dir),
            "DISTILLERY_MODEL_ROOTS": json.dumps([str(data_dir / "models")]),
            "DISTILLERY_QUEUE_NAME": queue_name,
            "DISTILLERY_HEARTBEAT_SECONDS": "1",
            "DISTILLERY_LEASE_SECONDS": str(LEASE_SECONDS),
            "DISTILLERY_RECONCILE_SECONDS": "2",
            "DISTILLERY_DATABASE_TIMEOUT_SECONDS": "2",
        }
        worker_log = data_dir / "worker.log"
        worker = start_worker(env, queue_name=queue_name, log_path=worker_log)
        stack: Stack | None = None
        port = free_port()
        api = start_api(env, port=port, log_path=data_dir / "api.log")
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": "Bearer dk-dev-embedded-only"},
            timeout=30,
        )
        try:
            upload = {"file": ("sentiment.jsonl", jsonl_bytes(sentiment_rows(160)))}
            response = client.post("/v1/files", files=upload)
            assert response.status_code == 201, response.text
            stack = Stack(
                client, server, env, worker, worker_log, data_dir / "artifacts", response.json()["id"]
            )
            yield stack
        finally:
            client.close()
            stop(api)
            stop(stack.worker if stack else worker)
            broker = redis.Redis.from_url(os.environ["DISTILLERY_BROKER_URL"])
            broker.delete(queue_name, f"_kombu.binding.{queue_name}")
            broker.close()


def post_job(stack: Stack, *, epochs: int, batch_size: int = 16) -> str:
    """Response KD from the tiny teacher into a one-layer student: 160 rows per epoch."""
    spec = {
        "teacher": {"path": "tiny-teacher"},
        "student": {"init": "teacher_layers", "layers": [0]},
        "data": {"train_file": stack.train_file, "max_length": 16},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "training": {"epochs": epochs, "batch_size": batch_size, "learning_rate": 1e-3, "warmup_ratio": 0.0},
    }
    response = stack.client.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


def wait_for(
    stack: Stack, job_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = stack.client.get(f"/v1/jobs/{job_id}").json()
        if until(job):
            return job
        assert job["status"] not in TERMINAL, job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout}s"
        time.sleep(0.3)


def finished(stack: Stack, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        job: dict[str, Any] = stack.client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.3)


def events_of(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    page = stack.client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()
    assert not page["has_more"]
    events: list[dict[str, Any]] = page["data"]
    return events


def wait_for_log_line(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"the worker never logged {text!r}"
        time.sleep(0.2)


def metrics_records(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    """What the engine wrote to its own metrics file so far (it needs no database)."""
    path = stack.artifacts / "jobs" / job_id / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line being written
    return records


def trained_steps(stack: Stack, job_id: str) -> int:
    return max((record["step"] for record in metrics_records(stack, job_id)), default=0)


def wait_for_training(stack: Stack, job_id: str, *, steps: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while trained_steps(stack, job_id) < steps:
        assert time.monotonic() < deadline, f"job {job_id} did not reach step {steps}"
        time.sleep(0.05)


def test_a_job_trains_through_a_five_second_database_outage_in_the_same_attempt(stack: Stack) -> None:
    job_id = post_job(stack, epochs=25)
    wait_for_training(stack, job_id, steps=5)

    stack.server.stop()
    try:
        steps_at_stop = trained_steps(stack, job_id)
        time.sleep(OUTAGE_SECONDS)
        steps_at_restart = trained_steps(stack, job_id)
    finally:
        stack.server.start()

    done = finished(stack, job_id)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 1
    total = done["progress"]["total_steps"]
    assert steps_at_stop < steps_at_restart  # training went on while the database was away
    assert done["progress"]["step"] == total
    log = stack.worker_log.read_text(errors="replace")
    assert log.count(f"the database (job {job_id}) is unreachable") == 1
    events = events_of(stack, job_id)
    assert [event["id"] for event in events] == list(range(1, len(events) + 1))
    assert not any("transient error" in event["message"] for event in events)
    # Every metric the engine recorded in its own file reached the job's log, in order.
    eval_steps = [record["step"] for record in metrics_records(stack, job_id) if record["split"] == "eval"]
    log_every = max(1, min(50, total // 20))
    train_steps = [step for step in range(1, total + 1) if step % log_every == 0 or step == total]
    metrics = [event["data"] for event in events if event["type"] == "metrics"]
    assert [(data["split"], data["step"]) for data in metrics] == sorted(
        [("train", step) for step in train_steps] + [("eval", step) for step in eval_steps],
        key=lambda pair: (pair[1], pair[0] == "eval"),
    )
    checkpoint_steps = [event["data"]["step"] for event in events if event["type"] == "checkpoint"]
    assert checkpoint_steps == eval_steps


def test_a_worker_cut_off_from_the_database_for_longer_than_the_lease_stops_and_the_job_is_retried(
    stack: Stack,
) -> None:
    job_id = post_job(stack, epochs=100, batch_size=4)  # 4,000 steps: it outlasts the lease
    wait_for_training(stack, job_id, steps=1)

    stack.server.stop()
    try:
        line = f"job {job_id}: no heartbeat stored for"
        wait_for_log_line(stack.worker_log, line, timeout=LEASE_SECONDS + 30)
    finally:
        stack.server.start()

    # The worker left the job to the reconciler, which queues it again for a second attempt.
    wait_for(stack, job_id, lambda job: job["attempts"] == 2 or job["status"] == "queued", timeout=180)
    assert stack.client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    done = finished(stack, job_id)
    assert done["status"] == "cancelled"
    messages = [event["message"] for event in events_of(stack, job_id)]
    assert any("stopped heartbeating; job queued" in message for message in messages)
    assert not any(message.startswith("job failed") for message in messages)


def test_a_database_outage_longer_than_the_retry_budget_requeues_the_job_and_it_resumes(stack: Stack) -> None:
    stack.restart_worker(DISTILLERY_DATABASE_RETRY_SECONDS="2")
    job_id = post_job(stack, epochs=10)
    wait_for_training(stack, job_id, steps=1)

    stack.server.stop()
    try:
        # Training ends while the database is down; storing the artifacts gives up after the retry budget.
        line = f"job {job_id}: attempt 1 failed on a transient error"
        wait_for_log_line(stack.worker_log, line, timeout=180)
    finally:
        stack.server.start()

    done = finished(stack, job_id)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 2
    events = events_of(stack, job_id)
    retries = [event for event in events if "transient error" in event["message"]]
    assert len(retries) == 1
    assert retries[0]["data"]["error"]["code"] == "database_unavailable"
    assert retries[0]["data"]["error"]["retryable"] is True
    messages = [event["message"] for event in events]
    resumed = f"resumed from the checkpoint at step {done['progress']['total_steps']}"
    assert messages.index(retries[0]["message"]) < messages.index(resumed)
    assert [event["id"] for event in events] == list(range(1, len(events) + 1))
