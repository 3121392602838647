"""`control: same_init | base`: a same_init control starts where the student does (true still means it),
a base control starts from the model the teacher was trained from."""

from typing import Any

import pytest

from api.test_job_create import post_error
from app.jobs.models import Job, JobStatus


def post_pair(client: Any, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    parent = response.json()
    return parent, client.get(f"/v1/jobs/{parent['control_job_id']}").json()


def succeeded_teacher_job(
    client: Any, job_spec: dict[str, Any], db_session: Any, settings: Any, student: Any
) -> str:
    """A succeeded supervised job whose student started as `student` says, with a stored student."""
    body = {**job_spec, "student": student, "method": {"type": "supervised"}}
    job_id = client.post("/v1/jobs", json=body).json()["id"]
    db_session.get(Job, job_id).status = JobStatus.SUCCEEDED
    db_session.commit()
    folder = settings.artifacts / "jobs" / job_id / "student"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return job_id


@pytest.mark.parametrize("control", [True, "same_init"])
def test_a_same_init_control_starts_where_the_student_does(
    client: Any, job_spec: dict[str, Any], control: Any
) -> None:
    parent, control_job = post_pair(
        client, {**job_spec, "student": {"init": "teacher_layers"}, "control": control}
    )
    assert parent["spec"]["control"] == control
    assert control_job["spec"]["student"] == parent["spec"]["student"]


def test_a_base_control_starts_from_student_base(
    client: Any, job_spec: dict[str, Any], tiny_model: str
) -> None:
    student = {"init": "teacher_layers", "layers": [0], "base": {"path": tiny_model}}
    parent, control = post_pair(client, {**job_spec, "student": student, "control": "base"})

    assert parent["spec"]["student"]["model"] is None  # the distilled student copies the teacher's layers
    assert control["spec"]["student"]["model"] == {"path": tiny_model, "job": None}
    assert control["spec"]["student"]["layers"] == [0] and control["spec"]["student"]["base"] is None
    assert control["spec"]["method"] == {"type": "supervised"}


def test_a_base_control_takes_the_model_its_teacher_job_started_from(
    client: Any, job_spec: dict[str, Any], db_session: Any, settings: Any, tiny_model: str
) -> None:
    start = {"init": "pretrained", "model": {"path": tiny_model}}
    teacher = succeeded_teacher_job(client, job_spec, db_session, settings, start)

    body = {**job_spec, "teacher": {"job": teacher}, "student": {"init": "teacher_layers"}, "control": "base"}
    _, control = post_pair(client, body)

    assert control["spec"]["student"]["model"] == {"path": tiny_model, "job": None}


def test_a_teacher_job_with_no_starting_model_of_its_own_is_a_422_on_student_base(
    client: Any, job_spec: dict[str, Any], db_session: Any, settings: Any
) -> None:
    teacher = succeeded_teacher_job(client, job_spec, db_session, settings, {"init": "teacher_layers"})

    body = {**job_spec, "teacher": {"job": teacher}, "control": "base"}
    status, error = post_error(client, body)

    assert (status, error["param"]) == (422, "student.base") and teacher in error["message"]
    assert len(client.get("/v1/jobs").json()["data"]) == 1  # only the teacher job


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"control": "base"}, "control"),  # a teacher path says nothing of its base model
        ({"control": "base", "student": {"init": "config", "config": {"num_hidden_layers": 1}}}, "control"),
        ({"student": {"init": "teacher_layers", "base": {"path": "x"}}}, "student.base"),
        (
            {"control": "base", "student": {"init": "teacher_layers", "base": {"path": "missing"}}},
            "student.base.path",
        ),
        ({"control": "teacher"}, "control"),
    ],
)
def test_a_control_mode_that_cannot_run_is_a_422_naming_the_field(
    client: Any, job_spec: dict[str, Any], change: dict[str, Any], param: str
) -> None:
    status, error = post_error(client, {**job_spec, **change})
    assert (status, error["param"]) == (422, param), error


def test_a_teacher_jobs_starting_model_that_is_gone_is_a_422_on_student_base(
    client: Any, job_spec: dict[str, Any], db_session: Any, settings: Any, tiny_model: str
) -> None:
    teacher = succeeded_teacher_job(
        client, job_spec, db_session, settings, {"init": "pretrained", "model": {"path": tiny_model}}
    )
    row = db_session.get(Job, teacher)
    row.spec = {**row.spec, "student": {**row.spec["student"], "model": {"path": "gone", "job": None}}}
    db_session.commit()

    status, error = post_error(client, {**job_spec, "teacher": {"job": teacher}, "control": "base"})

    assert (status, error["param"], error["code"]) == (422, "student.base", "model_not_found")
