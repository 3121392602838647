"""The worker resolves a job's file ids against the database and names the field of a missing one."""

from pathlib import Path
from typing import Any

import pytest

from distillery.jobspec import JobSpec
from engine.errors import UserError
from worker.job_inputs import DatabaseInputs


def spec_with_files(train_file: str, **files: str) -> JobSpec:
    """A response-KD spec reading the given files."""
    return JobSpec.model_validate(
        {
            "teacher": {"path": "tiny-teacher"},
            "student": {"init": "teacher_layers", "layers": [0]},
            "data": {"train_file": train_file, **files},
            "method": {"type": "response"},
        }
    )


def test_an_uploaded_file_resolves_to_its_stored_path(settings: Any, train_file: str) -> None:
    inputs = DatabaseInputs(spec=spec_with_files(train_file), tenant="default", settings=settings)
    path = inputs.file(train_file)
    assert path.is_file() and path.is_relative_to(Path(settings.artifacts).resolve())


@pytest.mark.parametrize("field", ["eval_file", "transfer_file"])
def test_a_missing_file_names_the_field_that_refers_to_it(settings: Any, train_file: str, field: str) -> None:
    spec = spec_with_files(train_file, **{field: "file_missing"})
    with pytest.raises(UserError) as raised:
        DatabaseInputs(spec=spec, tenant="default", settings=settings).file("file_missing")
    assert (raised.value.code, raised.value.param) == ("file_not_found", f"data.{field}")
