"""A worker that shares no folder with the API: inputs from the object store, everything it writes to it.

Each worker runs in a data directory of its own; the API (this test process) in the session's.
"""

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.storage import store_at
from storage.s3_deployment import S3Deployment, deployment, distill_spec, save_teacher, store_teacher
from worker.reconciler import reconcile_once

pytestmark = pytest.mark.slow


@pytest.fixture
def s3(
    s3_server: Any, make_client: Callable[..., Any], settings: Any, tmp_path: Path, monkeypatch: Any
) -> Iterator[S3Deployment]:
    yield from deployment(
        s3_server=s3_server,
        make_client=make_client,
        settings=settings,
        tmp_path=tmp_path,
        monkeypatch=monkeypatch,
    )


def first_checkpoint(s3: S3Deployment, job_id: str, timeout: float = 120) -> int:
    """Wait for the job's first recorded checkpoint; returns its step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = s3.client.get(f"/v1/jobs/{job_id}/checkpoints").json()["data"]
        if rows:
            return int(rows[0]["step"])
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of {job_id} after {timeout}s: {s3.events(job_id)}")


def test_a_job_on_a_worker_with_its_own_folder_reads_an_s3_teacher_and_its_student_teaches_the_next(
    s3: S3Deployment, settings: Any, make_client: Callable[..., Any], tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification

    model_root = f"{s3.url.rsplit('/', 1)[0]}/models"
    teacher = store_teacher(model_root, settings, tmp_path / "saved")
    s3.client = make_client(api_key=settings.dev_api_key, storage_url=s3.url, model_roots=[model_root])
    _, worker_dir = s3.start_worker(
        "worker-b", DISTILLERY_MODEL_ROOTS=json.dumps([model_root]), DISTILLERY_WORKER_DEVICES="2"
    )
    # On two processes: the job process fetches the teacher, rank 0 stores what the group wrote.
    spec = {**distill_spec({"path": teacher}, s3.upload()), "resources": {"accelerator": "cpu", "devices": 2}}
    first = s3.create_job(spec)
    assert s3.wait_for(first)["status"] == "succeeded", s3.events(first)

    stored = {item.key for item in store_at(s3.url, settings).files_under(f"jobs/{first}")}
    for name in ("student.tar.gz", "report.json", "metrics.jsonl", "curves.png", "student/config.json"):
        assert f"jobs/{first}/{name}" in stored
    assert any(key.startswith(f"jobs/{first}/checkpoints/step-") for key in stored)
    s3.wait_until(lambda: not (worker_dir / "work" / "jobs" / first).exists())  # gone once the group ended
    assert not (settings.artifacts / "jobs" / first).exists()  # nothing in the API's own folder
    assert [path.name for path in (worker_dir / "work" / "models").iterdir()]  # the teacher's local copy
    student = AutoModelForSequenceClassification.from_pretrained(s3.student(first, tmp_path / "download"))
    assert student.config.num_hidden_layers == 1

    second = s3.create_job(distill_spec({"job": first}, s3.upload(), max_steps=2))
    assert s3.wait_for(second)["status"] == "succeeded", s3.events(second)


def test_a_second_worker_resumes_a_killed_workers_job_from_the_stored_checkpoint(
    s3: S3Deployment, settings: Any, model_root: Path
) -> None:
    first_worker, first_dir = s3.start_worker("worker-b")
    teacher = save_teacher(model_root, first_dir / "models")
    spec = distill_spec({"path": teacher}, s3.upload(), epochs=2, eval_every_steps=3)
    job_id = s3.create_job(spec)
    step = first_checkpoint(s3, job_id)
    first_worker.send_signal(signal.SIGKILL)
    first_worker.wait()
    time.sleep(1.1)
    assert reconcile_once(settings.model_copy(update={"lease_seconds": 1.0})) == [job_id]

    second_models = s3.tmp_path / "worker-c" / "models"
    second_models.mkdir(parents=True)
    save_teacher(model_root, second_models)
    # Its own reconciler on, as in a deployment: a ticket that finds nothing to claim at that moment
    # leaves the job without a message, and the reconciler sends it again.
    reconciling = {"DISTILLERY_RECONCILE_SECONDS": "2", "DISTILLERY_REPUBLISH_MIN_INTERVAL_SECONDS": "2"}
    s3.start_worker("worker-c", **reconciling)
    job = s3.wait_for(job_id)
    events = s3.events(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 2, events
    assert any("fetched" in line and "stored checkpoint" in line for line in events), events
    resumed = [line for line in events if "resumed from the checkpoint at step" in line]
    assert resumed and int(resumed[0].rsplit(" ", 1)[1]) >= step, events


def test_a_store_outage_mid_job_requeues_it_and_it_then_succeeds(
    s3: S3Deployment, s3_server: Any, model_root: Path
) -> None:
    # No retries: the first write that meets the outage ends the attempt, which is queued again.
    _, worker_dir = s3.start_worker(
        "worker-b", DISTILLERY_STORAGE_RETRY_ATTEMPTS="1", DISTILLERY_STORAGE_RETRY_SECONDS="0"
    )
    teacher = save_teacher(model_root, worker_dir / "models")
    job_id = s3.create_job(distill_spec({"path": teacher}, s3.upload(), epochs=2, eval_every_steps=3))
    first_checkpoint(s3, job_id)
    s3_server.stop()
    try:
        s3.wait_for(job_id, until=lambda job: job["attempts"] >= 2 or job["status"] != "running")
    finally:
        s3_server.start()
    job = s3.wait_for(job_id)
    events = s3.events(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 2, events
    assert any("transient error (StoreUnavailable" in line for line in events), events
