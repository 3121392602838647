"""Steering generated requests at resources that exist, so that valid ones reach past the lookups."""

from typing import Any

# Columns of the sample upload (`upload_samples.SAMPLE_ROWS`).
TEXT_COLUMN, LABEL_COLUMN = "text", "label"
FILE_FIELDS = ("train_file", "eval_file", "test_file", "transfer_file")
TEXT_FIELDS = ("text_column", "text_pair_column", "prompt_column")


def point_at_real_resources(case: Any, *, file_id: str, model_path: str) -> None:
    """Make a generated job request name the uploaded file, its columns and the tiny model."""
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        return
    data = body["data"]
    for field in FILE_FIELDS:
        if isinstance(data.get(field), str):
            data[field] = file_id
    for field in TEXT_FIELDS:
        if isinstance(data.get(field), str):
            data[field] = TEXT_COLUMN
    if isinstance(data.get("label_column"), str):
        data["label_column"] = LABEL_COLUMN
    # Every method accepts a teacher, and without one most student inits are refused; a transfer set
    # needs a teacher method, so it is left out rather than matched to the method.
    body["teacher"] = {"path": model_path}
    data.pop("transfer_file", None)
    student = body.get("student")
    if isinstance(student, dict):
        _point_ref(student.get("model"), model_path)


def _point_ref(ref: Any, model_path: str) -> None:
    """A model reference becomes the tiny model's path (a job reference would name no succeeded job)."""
    if isinstance(ref, dict) and ("path" in ref or "job" in ref):
        ref.pop("job", None)
        ref["path"] = model_path


def point_path_at_real_resources(case: Any, *, job_id: str, file_id: str) -> None:
    """Make a generated request's job and file ids name ones that exist."""
    parameters = case.path_parameters or {}
    if "job_id" in parameters:
        parameters["job_id"] = job_id
    if "file_id" in parameters:
        parameters["file_id"] = file_id
