"""Tokenizers at job creation: different vocabularies are a 422 naming both unless the method crosses them."""

import json
from pathlib import Path
from typing import Any

import pytest


def save_model_dir(root: Path, name: str, vocabulary: dict[str, int], *, form: str = "tokenizer.json") -> str:
    """A model directory as the API sees one: a config and tokenizer files, no weights."""
    directory = root / name
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    if form == "tokenizer.json":
        document = {"version": "1.0", "added_tokens": [], "model": {"type": "BPE", "vocab": vocabulary}}
        (directory / "tokenizer.json").write_text(json.dumps(document))
    else:
        (directory / "vocab.json").write_text(json.dumps(vocabulary))
    return name


WORDS = {"<eos>": 0, "one": 1, "two": 2, "three": 3, "Ġtwo": 4, "Ġthree": 5}
PIECES = {"<eos>": 0, "o": 1, "n": 2, "e": 3, "t": 4, "w": 5, "Ġt": 6, "wo": 7}


@pytest.fixture
def lm_job(client: Any, upload_file: Any, model_root: Path) -> dict[str, Any]:
    """A causal-LM response job from a whole-word teacher into a student whose tokenizer splits words."""
    file = upload_file(client, rows=[{"text": "one two three"}, {"text": "two three"}])
    return {
        "task": "causal_lm",
        "teacher": {"path": save_model_dir(model_root, "lm-words", WORDS)},
        "student": {"init": "pretrained", "model": {"path": save_model_dir(model_root, "lm-pieces", PIECES)}},
        "data": {"train_file": file["id"]},
        "method": {"type": "response"},
        "training": {"epochs": 1, "batch_size": 2},
    }


def post(client: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = client.post("/v1/jobs", json=body)
    return response.status_code, response.json()


def test_a_student_with_another_vocabulary_is_422_naming_both(client: Any, lm_job: dict[str, Any]) -> None:
    status, body = post(client, lm_job)
    error = body["error"]
    assert (status, error["param"], error["code"]) == (422, "student.model", "incompatible_model")
    assert "'lm-pieces', 8 tokens" in error["message"] and "'lm-words', 6 tokens" in error["message"]
    assert "method.cross_tokenizer: uld" in error["message"]


def test_cross_tokenizer_uld_accepts_the_same_pair(client: Any, lm_job: dict[str, Any]) -> None:
    lm_job["method"] = {"type": "response", "cross_tokenizer": "uld", "hybrid": True, "uld_weight": 2.0}
    status, job = post(client, lm_job)
    assert status == 201, job
    assert (job["spec"]["method"]["cross_tokenizer"], job["spec"]["method"]["hybrid"]) == ("uld", True)


def test_the_same_vocabulary_in_another_file_form_is_accepted(
    client: Any, lm_job: dict[str, Any], model_root: Path
) -> None:
    lm_job["student"]["model"]["path"] = save_model_dir(model_root, "lm-words-json", WORDS, form="vocab.json")
    status, job = post(client, lm_job)
    assert status == 201, job


def test_a_method_without_a_teacher_only_compares_against_one_and_is_accepted(
    client: Any, lm_job: dict[str, Any]
) -> None:
    status, job = post(client, {**lm_job, "method": {"type": "supervised"}})
    assert status == 201, job


@pytest.mark.parametrize(
    ("task", "method", "param"),
    [
        ("causal_lm", {"hybrid": True}, "method.hybrid"),
        ("causal_lm", {"cross_tokenizer": "uld", "top_k": 8}, "method.top_k"),
        ("causal_lm", {"cross_tokenizer": "uld", "sequence_level": {}}, "method.sequence_level"),
        ("causal_lm", {"cross_tokenizer": "byte"}, "method.cross_tokenizer"),
        ("sequence_classification", {"cross_tokenizer": "uld"}, "method.cross_tokenizer"),
    ],
)
def test_a_misplaced_cross_tokenizer_option_is_422_on_it(
    client: Any, lm_job: dict[str, Any], task: str, method: dict[str, Any], param: str
) -> None:
    status, body = post(client, {**lm_job, "task": task, "method": {"type": "response", **method}})
    assert (status, body["error"]["param"]) == (422, param), body


def test_the_report_control_must_exist(client: Any, lm_job: dict[str, Any]) -> None:
    lm_job["method"] = {"type": "response", "cross_tokenizer": "uld"}
    status, body = post(client, {**lm_job, "report": {"control": {"path": "no-such-model"}}})
    assert (status, body["error"]["param"], body["error"]["code"]) == (
        422,
        "report.control.path",
        "model_not_found",
    )
    status, job = post(client, {**lm_job, "report": {"control": {"path": "lm-pieces"}, "generations": 2}})
    assert status == 201, job
    assert job["spec"]["report"] == {
        "control": {"path": "lm-pieces", "job": None},
        "generations": 2,
        "prompt_tokens": 8,
        "max_new_tokens": 24,
    }
