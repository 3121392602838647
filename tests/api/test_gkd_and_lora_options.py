"""GKD's method options and a LoRA student's options: bad values are a 422 naming the field."""

from typing import Any

import pytest

GKD = {"type": "gkd", "lmbda": 0.5, "beta": 0.5}
LORA = {"r": 8, "target_modules": ["c_attn"]}


def causal_lm(spec: dict[str, Any], *, method: dict[str, Any], student: dict[str, Any]) -> dict[str, Any]:
    """The valid request turned into a causal LM job with this method and student."""
    return {**spec, "task": "causal_lm", "method": method, "student": student}


@pytest.mark.parametrize(
    ("method", "student", "param"),
    [
        ({**GKD, "lmbda": 1.5}, {}, "method.lmbda"),
        ({**GKD, "lmbda": -0.1}, {}, "method.lmbda"),
        ({**GKD, "beta": 1.01}, {}, "method.beta"),
        ({**GKD, "temperature": 0}, {}, "method.temperature"),
        ({**GKD, "generation": {"max_new_tokens": 0}}, {}, "method.generation.max_new_tokens"),
        ({**GKD, "generation": {"temperature": 0}}, {}, "method.generation.temperature"),
        ({**GKD, "generation": {"top_p": 0}}, {}, "method.generation.top_p"),
        ({**GKD, "generation": {"top_k": 5}}, {}, "method.generation.top_k"),
        (GKD, {"lora": {**LORA, "r": 0}}, "student.lora.r"),
        (GKD, {"lora": {**LORA, "alpha": 0}}, "student.lora.alpha"),
        (GKD, {"lora": {**LORA, "dropout": 1}}, "student.lora.dropout"),
        (GKD, {"lora": {**LORA, "target_modules": []}}, "student.lora.target_modules"),
        (GKD, {"lora": {**LORA, "target_modules": ["q proj"]}}, "student.lora.target_modules.0"),
        (GKD, {"lora": {**LORA, "target_modules": ["all-linear", "c_attn"]}}, "student.lora.target_modules"),
        (GKD, {"init": "config", "config": {"n_layer": 2}, "lora": LORA}, "student.lora"),
    ],
)
def test_a_bad_gkd_or_lora_option_is_422_on_its_field(
    client: Any, job_spec: dict[str, Any], method: dict[str, Any], student: dict[str, Any], param: str
) -> None:
    response = client.post("/v1/jobs", json=causal_lm(job_spec, method=method, student=student))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["param"], error["type"]) == (param, "user"), error


def test_gkd_on_a_classification_job_is_422_on_the_method(client: Any, job_spec: dict[str, Any]) -> None:
    response = client.post("/v1/jobs", json={**job_spec, "method": GKD})
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "method.type"


def test_a_lora_student_of_self_distillation_is_422_on_it(client: Any, job_spec: dict[str, Any]) -> None:
    body = {**job_spec, "teacher": None, "method": {"type": "self"}, "student": {"lora": {"r": 4}}}
    body["student"]["model"] = job_spec["teacher"]
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "student.lora"
