"""Spec-level rules of control modes and evaluation-only jobs."""

from typing import Any

import pytest
from pydantic import ValidationError

from distillery.jobspec import JobSpec
from distillery.jobspec.teacher_outputs import teacher_outputs_signature

KD: dict[str, Any] = {
    "teacher": {"path": "bert"},
    "data": {"train_file": "f"},
    "method": {"type": "response"},
}


@pytest.mark.parametrize(
    ("control", "mode"), [(False, None), (True, "same_init"), ("same_init", "same_init")]
)
def test_true_is_same_init(control: Any, mode: Any) -> None:
    assert JobSpec.model_validate({**KD, "control": control}).control_mode == mode


def test_a_base_control_spec_starts_from_the_base_and_keeps_the_layers() -> None:
    student = {"init": "teacher_layers", "layers": [0, 2], "base": {"path": "base"}}
    spec = JobSpec.model_validate({**KD, "student": student, "control": "base"})

    control = spec.control_spec()

    assert control.student.model is not None and control.student.model.path == "base"
    assert control.student.layers == [0, 2] and control.student.base is None and control.control is False
    assert (
        spec.control_spec()
        != JobSpec.model_validate({**KD, "student": student | {"base": None}}).control_spec()
    )


def test_an_evaluation_only_job_reads_no_stored_teacher_outputs() -> None:
    training = JobSpec.model_validate(KD)
    evaluating = JobSpec.model_validate({**KD, "training": {"epochs": 0}})

    assert teacher_outputs_signature(training) is not None and teacher_outputs_signature(evaluating) is None


def test_evaluation_only_refuses_a_control() -> None:
    with pytest.raises(ValidationError, match="evaluation only"):
        JobSpec.model_validate({**KD, "training": {"epochs": 0}, "control": "same_init"})
