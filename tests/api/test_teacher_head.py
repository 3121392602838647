"""A base model named as a teacher is refused at creation, with the fix; a fine-tuned one is accepted."""

import json
from pathlib import Path
from typing import Any

import pytest


def saved_config(model_root: Path, name: str, **config: Any) -> str:
    directory = model_root / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"model_type": "bert", **config}))
    return name


def test_a_base_model_as_teacher_is_422_on_teacher_path_saying_to_fine_tune_it(
    client: Any, job_spec: dict[str, Any], model_root: Path
) -> None:
    teacher = saved_config(model_root, "base/bert-bare", architectures=["BertModel"])

    response = client.post("/v1/jobs", json={**job_spec, "teacher": {"path": teacher}})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("teacher.path", "incompatible_model")
    assert "'base/bert-bare' is a BertModel, with no sequence-classification head" in error["message"]
    assert "Fine-tune it first with a job of method supervised" in error["message"]
    assert "model: {path: base/bert-bare}" in error["message"]


def test_a_classifier_as_a_language_model_teacher_is_422_on_teacher_path(
    client: Any, job_spec: dict[str, Any], model_root: Path
) -> None:
    teacher = saved_config(model_root, "teachers/classifier", architectures=["BertForSequenceClassification"])
    spec = {**job_spec, "task": "causal_lm", "teacher": {"path": teacher}}

    response = client.post("/v1/jobs", json=spec)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == "teacher.path"
    assert "no language-model head" in response.json()["error"]["message"]


@pytest.mark.parametrize("architectures", [["BertForSequenceClassification"], None])
def test_a_teacher_with_the_tasks_head_or_no_architectures_named_is_accepted(
    client: Any, job_spec: dict[str, Any], model_root: Path, architectures: list[str] | None
) -> None:
    config = {} if architectures is None else {"architectures": architectures}
    teacher = saved_config(model_root, f"teachers/fine-tuned-{len(config)}", **config)

    response = client.post("/v1/jobs", json={**job_spec, "teacher": {"path": teacher}})

    assert response.status_code == 201, response.text
