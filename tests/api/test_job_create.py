"""Creating a job: validated by the spec, checked against files, models and limits, queued after commit."""

import base64
import json
from typing import Any

import pytest

from app.core.celery import RUN_JOB_TASK


def queued_job_ids(redis_client: Any, queue: str) -> list[str]:
    """The job ids waiting in the session's Redis queue, in publish order."""
    ids = []
    for raw in reversed(redis_client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        assert message["headers"]["task"] == RUN_JOB_TASK
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        ids.extend(args)
    return ids


def test_a_valid_job_is_stored_queued_and_published(
    client: Any, job_spec: dict[str, Any], redis_client: Any, settings: Any
) -> None:
    response = client.post("/v1/jobs", json={**job_spec, "name": "first", "metadata": {"team": "nlp"}})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["object"] == "job" and job["id"].startswith("job_")
    assert (job["status"], job["name"], job["metadata"], job["attempts"]) == (
        "queued",
        "first",
        {"team": "nlp"},
        0,
    )
    assert job["spec"]["method"] == {**job["spec"]["method"], "type": "response", "alpha": 0.5}
    assert "name" not in job["spec"] and job["spec"]["training"]["learning_rate"] == 5e-5
    assert job["progress"] == {"step": 0, "total_steps": None, "epoch": None, "estimated_finish_at": None}
    assert job["error"] is None and isinstance(job["created_at"], int)
    assert client.get(f"/v1/jobs/{job['id']}").json() == job
    assert queued_job_ids(redis_client, settings.queue_name) == [job["id"]]
    events = client.get(f"/v1/jobs/{job['id']}/events").json()["data"]
    assert [(event["type"], event["message"]) for event in events] == [("status", "job queued")]


def test_a_retry_with_the_same_idempotency_key_returns_the_same_job(
    client: Any, job_spec: dict[str, Any], redis_client: Any, settings: Any
) -> None:
    headers = {"Idempotency-Key": "retry-1"}
    first = client.post("/v1/jobs", json=job_spec, headers=headers)
    again = client.post("/v1/jobs", json=job_spec, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert len(client.get("/v1/jobs").json()["data"]) == 1
    assert queued_job_ids(redis_client, settings.queue_name) == [first.json()["id"]]


def test_the_same_idempotency_key_with_another_body_is_409(client: Any, job_spec: dict[str, Any]) -> None:
    headers = {"Idempotency-Key": "retry-2"}
    assert client.post("/v1/jobs", json=job_spec, headers=headers).status_code == 201
    changed = {**job_spec, "training": {"epochs": 2}}
    response = client.post("/v1/jobs", json=changed, headers=headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"


def test_idempotency_keys_are_per_tenant(
    client: Any, other_tenant_client: Any, job_spec: dict[str, Any], upload_file: Any
) -> None:
    headers = {"Idempotency-Key": "shared"}
    other_spec = {**job_spec, "data": {"train_file": upload_file(other_tenant_client)["id"]}}
    mine = client.post("/v1/jobs", json=job_spec, headers=headers)
    theirs = other_tenant_client.post("/v1/jobs", json=other_spec, headers=headers)
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]


def test_without_a_key_each_post_is_a_new_job(client: Any, job_spec: dict[str, Any]) -> None:
    ids = {client.post("/v1/jobs", json=job_spec).json()["id"] for _ in range(2)}
    assert len(ids) == 2


def test_a_job_is_still_created_when_the_broker_is_down(
    client: Any, job_spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery import Celery

    from app.jobs import queue

    unreachable = Celery("unreachable", broker="redis://127.0.0.1:1/0")
    unreachable.conf.broker_transport_options = {"max_retries": 0}
    unreachable.conf.task_publish_retry = False
    monkeypatch.setattr(queue, "celery_app", unreachable)
    response = client.post("/v1/jobs", json=job_spec)
    assert response.status_code == 201, response.text
    assert client.get(f"/v1/jobs/{response.json()['id']}").json()["status"] == "queued"


def post_error(client: Any, body: Any) -> tuple[int, dict[str, Any]]:
    response = client.post("/v1/jobs", json=body)
    return response.status_code, response.json().get("error", {})


def with_changes(spec: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    """The spec with some sections' fields changed."""
    return {**spec, **{name: {**spec.get(name, {}), **fields} for name, fields in sections.items()}}


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"method": {"type": "response", "alpha": 1.5}}, "method.alpha"),
        ({"method": {"type": "response", "alpha": -0.1}}, "method.alpha"),
        ({"method": {"type": "response", "temperature": 0}}, "method.temperature"),
        ({"method": {"type": "feature", "temperature": -1}}, "method.temperature"),
        ({"method": {"type": "response", "divergence": "l2"}}, "method.divergence"),
        ({"method": {"type": "response", "tempreature": 2}}, "method.tempreature"),
        ({"training": {"batch_size": 0}}, "training.batch_size"),
        ({"data": {"train_file": "f", "max_length": 1}}, "data.max_length"),
        ({"teacher": {"path": "a", "job": "b"}}, "teacher.path"),
        ({"student": {"init": "config"}}, "student.config"),
        ({"task": "translation"}, "task"),
        ({"name": "x" * 201}, "name"),
    ],
)
def test_an_invalid_field_is_422_naming_it(
    client: Any, job_spec: dict[str, Any], change: dict[str, Any], param: str
) -> None:
    status, error = post_error(client, {**job_spec, **change})
    assert (status, error.get("param"), error.get("type")) == (422, param, "user"), error


def test_an_unknown_method_is_422_on_the_method(client: Any, job_spec: dict[str, Any]) -> None:
    status, error = post_error(client, {**job_spec, "method": {"type": "telepathy"}})
    assert status == 422 and error["param"] in ("method", "method.type")
    assert "telepathy" in error["message"] or "response" in error["message"]


def test_a_method_not_for_the_task_is_422_on_method_type(client: Any, job_spec: dict[str, Any]) -> None:
    status, error = post_error(client, {**job_spec, "task": "causal_lm", "method": {"type": "attention"}})
    assert (status, error["param"]) == (422, "method.type")


def test_a_teacher_method_without_a_teacher_is_422_on_teacher(client: Any, job_spec: dict[str, Any]) -> None:
    spec = {key: value for key, value in job_spec.items() if key != "teacher"}
    status, error = post_error(client, spec)
    assert (status, error["param"]) == (422, "teacher")


@pytest.mark.parametrize("body", ["not json", "[1, 2]", "{}"], ids=["garbage", "array", "empty"])
def test_a_malformed_body_is_422_not_500(client: Any, body: str) -> None:
    response = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "user"


def test_a_missing_train_file_is_422_on_data_train_file(client: Any, job_spec: dict[str, Any]) -> None:
    status, error = post_error(client, with_changes(job_spec, data={"train_file": "file_missing"}))
    assert (status, error["param"], error["code"]) == (422, "data.train_file", "file_not_found")


def test_another_tenants_file_is_as_missing_as_no_file(
    other_tenant_client: Any, job_spec: dict[str, Any], tiny_model: str
) -> None:
    status, error = post_error(other_tenant_client, job_spec)
    assert (status, error["param"]) == (422, "data.train_file")


@pytest.mark.parametrize("field", ["eval_file", "test_file"])
def test_a_missing_eval_or_test_file_is_422_on_its_field(
    client: Any, job_spec: dict[str, Any], field: str
) -> None:
    status, error = post_error(client, with_changes(job_spec, data={field: "file_missing"}))
    assert (status, error["param"]) == (422, f"data.{field}")


def test_a_missing_transfer_file_is_422_on_data_transfer_file(client: Any, job_spec: dict[str, Any]) -> None:
    status, error = post_error(client, with_changes(job_spec, data={"transfer_file": "file_missing"}))
    assert (status, error["param"]) == (422, "data.transfer_file")


def test_a_transfer_file_needs_only_the_text_column(
    client: Any, job_spec: dict[str, Any], upload_file: Any
) -> None:
    unlabeled = upload_file(client, rows=[{"text": "an unlabeled tweet"}, {"text": "another one"}])
    response = client.post("/v1/jobs", json=with_changes(job_spec, data={"transfer_file": unlabeled["id"]}))
    assert response.status_code == 201, response.text


def test_a_transfer_file_without_a_teacher_method_is_422_on_it(client: Any, job_spec: dict[str, Any]) -> None:
    changed = with_changes(job_spec, data={"transfer_file": job_spec["data"]["train_file"]})
    status, error = post_error(client, {**changed, "method": {"type": "supervised"}})
    assert (status, error["param"]) == (422, "data.transfer_file")


@pytest.mark.parametrize(
    ("method", "param"),
    [({"top_k": 8}, "method.top_k"), ({"sequence_level": {"max_new_tokens": 8}}, "method.sequence_level")],
)
def test_a_causal_lm_option_on_a_classification_job_is_422_on_it(
    client: Any, job_spec: dict[str, Any], method: dict[str, Any], param: str
) -> None:
    status, error = post_error(client, with_changes(job_spec, method=method))
    assert (status, error["param"]) == (422, param)


@pytest.mark.parametrize(
    ("data", "param"),
    [({"text_column": "sentence"}, "data.text_column"), ({"label_column": "stars"}, "data.label_column")],
)
def test_a_column_the_file_lacks_is_422_on_that_column(
    client: Any, job_spec: dict[str, Any], data: dict[str, Any], param: str
) -> None:
    status, error = post_error(client, with_changes(job_spec, data=data))
    assert (status, error["param"]) == (422, param)
    assert "text, label" in error["message"]


def test_more_epochs_than_the_service_allows_is_422(
    client: Any, job_spec: dict[str, Any], settings: Any
) -> None:
    status, error = post_error(client, with_changes(job_spec, training={"epochs": settings.max_epochs + 1}))
    assert (status, error["param"]) == (422, "training.epochs")


def test_a_missing_model_names_the_roots_and_the_models_there(
    client: Any, job_spec: dict[str, Any], settings: Any
) -> None:
    status, error = post_error(client, {**job_spec, "teacher": {"path": "no-such-teacher"}})

    assert (status, error["param"], error["code"]) == (422, "teacher.path", "model_not_found")
    assert str(settings.model_roots[0]) in error["message"]
    assert job_spec["teacher"]["path"] in error["message"].split("models found there: ")[1]


@pytest.mark.parametrize(
    "path",
    ["../../etc", "../models-elsewhere/tiny-bert", "/etc", "tiny-bert/../../.."],
    ids=["dotdot", "sibling", "absolute-outside", "nested-dotdot"],
)
def test_a_teacher_path_escaping_the_model_roots_is_422(
    client: Any, job_spec: dict[str, Any], path: str
) -> None:
    status, error = post_error(client, {**job_spec, "teacher": {"path": path}})
    assert (status, error["param"]) == (422, "teacher.path")
    assert "outside" in error["message"]


def test_a_symlink_out_of_the_model_roots_is_refused(
    client: Any, job_spec: dict[str, Any], model_root: Any, tmp_path: Any
) -> None:
    outside = tmp_path / "outside-model"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    (model_root / "sneaky").symlink_to(outside)
    status, error = post_error(client, {**job_spec, "teacher": {"path": "sneaky"}})
    assert (status, error["param"]) == (422, "teacher.path")


def test_an_absolute_path_inside_a_root_is_accepted(
    client: Any, job_spec: dict[str, Any], model_root: Any, tiny_model: str
) -> None:
    response = client.post("/v1/jobs", json={**job_spec, "teacher": {"path": str(model_root / tiny_model)}})
    assert response.status_code == 201, response.text


def test_a_model_directory_without_config_is_422(
    client: Any, job_spec: dict[str, Any], model_root: Any
) -> None:
    (model_root / "empty").mkdir()
    status, error = post_error(client, {**job_spec, "teacher": {"path": "empty"}})
    assert (status, error["param"]) == (422, "teacher.path")


def test_a_student_from_an_unfinished_job_is_422_on_student_model_job(
    client: Any, job_spec: dict[str, Any], create_job: Any
) -> None:
    earlier = create_job()
    spec = {**job_spec, "student": {"init": "pretrained", "model": {"job": earlier["id"]}}}
    status, error = post_error(client, spec)
    assert (status, error["param"]) == (422, "student.model.job")
    assert "queued" in error["message"]


def test_a_student_from_a_succeeded_job_is_accepted(
    client: Any, job_spec: dict[str, Any], create_job: Any, db_session: Any, settings: Any
) -> None:
    from app.jobs.models import Job, JobStatus

    earlier = create_job()
    db_session.get(Job, earlier["id"]).status = JobStatus.SUCCEEDED
    db_session.commit()
    student = settings.artifacts / "jobs" / earlier["id"] / "student"
    student.mkdir(parents=True)
    (student / "config.json").write_text("{}")
    spec = {**job_spec, "student": {"init": "pretrained", "model": {"job": earlier["id"]}}}
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 201, response.text


def test_every_invalid_field_is_listed_at_once_after_the_first(client: Any, job_spec: dict[str, Any]) -> None:
    body = with_changes(job_spec, training={"learning_rate": -1, "batch_size": 0})

    status, error = post_error(client, body)

    assert status == 422
    assert [field["param"] for field in error["errors"]] == ["training.batch_size", "training.learning_rate"]
    assert (error["param"], error["code"]) == (error["errors"][0]["param"], error["errors"][0]["code"])


def test_a_misspelt_field_gets_the_closest_accepted_name(client: Any, job_spec: dict[str, Any]) -> None:
    misspelt = {**job_spec, "method": {"type": "response", "tempreature": 2}}
    nested = with_changes(job_spec, training={"learnig_rate": 0.1})

    _, method_error = post_error(client, misspelt)
    _, training_error = post_error(client, nested)

    assert "did you mean 'temperature'?" in method_error["message"]
    assert "did you mean 'learning_rate'?" in training_error["message"]
