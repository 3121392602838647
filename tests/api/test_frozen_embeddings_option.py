"""training.freeze_embeddings through the API: refused with a 422 on the field where it cannot apply."""

from typing import Any


def test_freezing_a_random_students_embeddings_is_422_on_the_field(client: Any, job_spec: dict[str, Any]):
    body = {
        **job_spec,
        "student": {"init": "config", "config": {"num_hidden_layers": 2}},
        "training": {**job_spec.get("training", {}), "freeze_embeddings": True},
    }
    response = client.post("/v1/jobs", json=body)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["param"], error["type"]) == ("training.freeze_embeddings", "user"), error
    assert "random embeddings" in error["message"]


def test_freezing_a_copied_classifiers_embeddings_is_accepted(client: Any, job_spec: dict[str, Any]):
    body = {**job_spec, "training": {**job_spec.get("training", {}), "freeze_embeddings": True}}
    response = client.post("/v1/jobs", json=body)

    assert response.status_code == 201, response.text
    assert response.json()["spec"]["training"]["freeze_embeddings"] is True
