"""The quickstart's specs are valid jobs (a teacher from the base model, then KD), and reruns reuse them."""

from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_fake_api import FakeApi, make_job

from app.cli.quickstart.specs import (
    BASE_MODEL,
    TEACHER_MODEL,
    Sizes,
    distillation_spec,
    shown_path,
    teacher_spec,
)
from app.cli.quickstart.steps import submit
from distillery.jobspec import JobSpec

FILES = {split: f"var/quickstart/tweets-{split}.jsonl" for split in ("train", "eval", "test")}


def test_the_teacher_fine_tunes_the_base_model_and_the_student_distils_the_installed_teacher() -> None:
    sizes = Sizes(train_rows=10, eval_rows=4, test_rows=4, epochs=1, max_length=16)

    teacher = JobSpec.model_validate(teacher_spec(FILES, sizes))
    distil = JobSpec.model_validate(distillation_spec(FILES, sizes))

    assert (teacher.method.type, teacher.teacher) == ("supervised", None)
    assert teacher.student.model is not None and teacher.student.model.path == BASE_MODEL
    assert distil.teacher is not None and distil.teacher.path == TEACHER_MODEL
    assert (distil.method.type, distil.control, distil.student.layers) == ("response", True, [0, 2, 4])
    for spec in (teacher, distil):
        assert spec.data.train_file == FILES["train"] and spec.data.test_file == FILES["test"]
        assert (spec.training.epochs, spec.data.max_length) == (1, 16)


def test_a_path_is_shown_from_the_current_directory_when_it_lies_below(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert shown_path(tmp_path / "var" / "models") == "var/models"
    assert shown_path(tmp_path.parent) == str(tmp_path.parent.resolve())


def test_a_spec_whose_earlier_job_failed_gets_a_fresh_job_and_then_keeps_it(tmp_path: Path) -> None:
    spec_file = tmp_path / "teacher.yaml"
    spec_file.write_text("data: {train_file: file_1}\nmethod: {type: supervised}\n")
    jobs: dict[str, dict[str, Any]] = {}

    def create(request: httpx.Request, _match: object) -> httpx.Response:
        key = request.headers["Idempotency-Key"]
        return httpx.Response(201, json=jobs.setdefault(key, make_job(f"job_{len(jobs)}", "queued")))

    api = FakeApi()
    api.route("POST", "/v1/jobs", create)
    client = api.client()

    first = submit(client, spec_file, name="teacher", upload=no_upload, salt="")
    base = api.requests[-1].headers["Idempotency-Key"]
    jobs[base] = make_job(first["id"], "failed")
    again = submit(client, spec_file, name="teacher", upload=no_upload, salt="")
    later = submit(client, spec_file, name="teacher", upload=no_upload, salt="")

    assert again["id"] == later["id"] != first["id"] and later["status"] == "queued"
    assert api.requests[-1].headers["Idempotency-Key"] == f"{base}-2"


def no_upload(path: Path) -> dict[str, Any]:
    raise AssertionError(f"nothing to upload, got {path}")
