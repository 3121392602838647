"""A real worker process runs jobs from the queue: success, cancellation, user errors and control runs."""

import io
import math
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tiny_assets import jsonl_bytes, sentiment_rows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("worker_process")]


def test_posted_job_runs_to_a_student_that_loads_with_transformers(
    client: Any, distill_spec: dict[str, Any], wait_for: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    job = client.post("/v1/jobs", json={**distill_spec, "name": "tiny"}).json()

    done = wait_for(client, job["id"])

    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 1
    assert done["progress"]["step"] == done["progress"]["total_steps"] > 0
    assert done["result"]["student"]["parameters"]["total"] > 0
    events = client.get(f"/v1/jobs/{job['id']}/events", params={"limit": 100}).json()["data"]
    types = {event["type"] for event in events}
    assert {"status", "metrics"} <= types
    # The worker reports how fast it trains with the training loss.
    train = [e["data"]["metrics"] for e in events if e["type"] == "metrics" and e["data"]["split"] == "train"]
    assert train and all(m["examples_per_second"] > 0 and m["tokens_per_second"] > 0 for m in train)
    # The teacher ran once before training, into the store the workers share; the log and report say so.
    cache = done["result"]["training"]["teacher_cache"]
    assert cache["status"] in ("miss", "hit") and cache["bytes"] > 0
    assert any(event.get("message", "").startswith("teacher outputs: cache") for event in events)
    assert [event["id"] for event in events] == sorted(event["id"] for event in events)
    names = {artifact["name"] for artifact in client.get(f"/v1/jobs/{job['id']}/artifacts").json()["data"]}
    assert {"student.tar.gz", "report.json"} <= names

    archive = client.get(f"/v1/jobs/{job['id']}/artifacts/student.tar.gz")
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "student")
    assert student.config.num_hidden_layers == 1
    logits = student(**tokenizer(["the movie was great"], return_tensors="pt")).logits
    assert logits.shape == (1, 2)


def test_cancelling_a_running_job_stops_it_between_steps_and_cancels_its_control(
    client: Any, distill_spec: dict[str, Any], wait_for: Callable[..., dict[str, Any]]
) -> None:
    long_spec = {**distill_spec, "training": {**distill_spec["training"], "epochs": 100}, "control": True}
    job = client.post("/v1/jobs", json=long_spec).json()
    wait_for(client, job["id"], until=lambda j: j["status"] == "running" and j["progress"]["step"] > 0)

    response = client.post(f"/v1/jobs/{job['id']}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelling"
    # One job at a time on this worker: its control was still queued, so it is cancelled at once.
    assert client.get(f"/v1/jobs/{job['control_job_id']}").json()["status"] == "cancelled"
    done = wait_for(client, job["id"], timeout=60)
    assert done["status"] == "cancelled"
    assert done["progress"]["step"] < done["progress"]["total_steps"]


def test_an_incompatible_spec_fails_the_job_as_a_user_error_naming_the_field(
    client: Any, distill_spec: dict[str, Any], wait_for: Callable[..., dict[str, Any]]
) -> None:
    bad = {**distill_spec, "student": {"init": "teacher_layers", "layers": [0, 7]}}
    job = client.post("/v1/jobs", json=bad).json()

    done = wait_for(client, job["id"])

    assert done["status"] == "failed"
    assert done["error"]["type"] == "user"
    assert done["error"]["param"] == "student.layers"


def test_a_job_with_control_reports_its_gain_over_the_control_on_the_test_split(
    client: Any, distill_spec: dict[str, Any], wait_for: Callable[..., dict[str, Any]]
) -> None:
    rows = jsonl_bytes(sentiment_rows(40, seed=1))
    test_file = client.post("/v1/files", files={"file": ("test.jsonl", rows)}).json()["id"]
    spec = {
        **distill_spec,
        "data": {**distill_spec["data"], "test_file": test_file},
        "training": {**distill_spec["training"], "epochs": 1},
        "control": True,
    }
    job = client.post("/v1/jobs", json=spec).json()

    control = wait_for(client, job["control_job_id"])
    done = wait_for(client, job["id"])

    assert done["status"] == "succeeded", done["error"]
    assert control["status"] == "succeeded", control["error"]
    assert control["parent_id"] == job["id"] and control["result"]["method"] == "supervised"
    # The same student, data, seed and schedule: only the teacher's part of the loss is gone.
    assert control["progress"]["total_steps"] == done["progress"]["total_steps"]
    assert control["result"]["training"]["seed"] == done["result"]["training"]["seed"]
    assert control["result"]["student"]["parameters"] == done["result"]["student"]["parameters"]
    summary = done["result"]["control"]
    assert (summary["job_id"], summary["status"], summary["split"]) == (control["id"], "succeeded", "test")
    student, baseline = done["result"]["student"]["test"], control["result"]["student"]["test"]
    assert summary["gain"]["accuracy"] == pytest.approx(student["accuracy"] - baseline["accuracy"])
    assert summary["gain"]["loss"] == pytest.approx(baseline["loss"] - student["loss"])
    # The verdict weighs the accuracy gain against both reports' standard errors of it.
    verdict, errors = summary["verdict"], (done["result"]["student"], control["result"]["student"])
    assert verdict["metric"] == "accuracy" and verdict["gain"] == pytest.approx(summary["gain"]["accuracy"])
    assert verdict["noise"] == pytest.approx(
        math.hypot(*(side["stderr"]["test"]["accuracy"] for side in errors))
    )
    assert verdict["verdict"] in ("helped", "did not help", "teacher no better than control")
    assert summary["mode"] == "same_init" and errors[0]["examples"]["test"] == 40


def test_an_evaluation_only_job_measures_its_starting_student_on_the_worker(
    client: Any, distill_spec: dict[str, Any], teacher_path: str, wait_for: Callable[..., dict[str, Any]]
) -> None:
    spec = {
        **distill_spec,
        "student": {"init": "pretrained", "model": {"path": teacher_path}},
        "training": {**distill_spec["training"], "epochs": 0},
    }
    job = client.post("/v1/jobs", json=spec).json()

    done = wait_for(client, job["id"])

    assert done["status"] == "succeeded", done["error"]
    report = done["result"]
    assert report["training"]["steps"] == 0 and report["student"]["eval"] == report["teacher"]["eval"]
    names = {artifact["name"] for artifact in client.get(f"/v1/jobs/{job['id']}/artifacts").json()["data"]}
    assert {"student.tar.gz", "report.json"} <= names
