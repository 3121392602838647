"""`training.epochs: 0` is evaluation only; what needs training beside it is a 422 naming the field."""

from typing import Any

import pytest

from api.test_job_create import post_error


def test_an_evaluation_only_job_is_accepted(client: Any, job_spec: dict[str, Any]) -> None:
    body = {
        **job_spec,
        "student": {"init": "pretrained", "model": job_spec["teacher"]},
        "training": {"epochs": 0},
    }
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["training"]["epochs"] == 0


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"control": True}, "control"),
        ({"training": {"epochs": 0, "max_steps": 5}}, "training.max_steps"),
        ({"student": {"init": "config", "config": {"num_hidden_layers": 1}}}, "student.init"),
    ],
)
def test_evaluation_only_with_what_needs_training_is_a_422_naming_the_field(
    client: Any, job_spec: dict[str, Any], change: dict[str, Any], param: str
) -> None:
    body = {**job_spec, "training": {"epochs": 0}, **change}
    status, error = post_error(client, body)
    assert (status, error["param"]) == (422, param)
    assert "evaluation only" in error["message"]


def test_negative_epochs_are_still_refused(client: Any, job_spec: dict[str, Any]) -> None:
    status, error = post_error(client, {**job_spec, "training": {"epochs": -1}})
    assert (status, error["param"]) == (422, "training.epochs")
