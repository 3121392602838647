"""Reading a spec file and applying `--set` overrides."""

from pathlib import Path

import pytest

from distillery.cli.spec_file import load_spec, parse_override
from distillery.cli.state import CliError

SPEC = """\
task: sequence_classification
teacher: {path: bert-teacher}
student:
  init: teacher_layers
  layers: [0, 2]
data:
  train_file: file_1
method:
  type: response
  temperature: 2.0
"""


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return path


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("training.epochs=3", (["training", "epochs"], 3)),
        ("method.alpha=0.7", (["method", "alpha"], 0.7)),
        ("training.group_by_length=false", (["training", "group_by_length"], False)),
        ("data.eval_file=null", (["data", "eval_file"], None)),
        ("student.layers=[1, 3]", (["student", "layers"], [1, 3])),
        ("name=a=b", (["name"], "a=b")),
        ("data.train_file='123'", (["data", "train_file"], "123")),
    ],
)
def test_an_override_value_is_read_as_yaml(override: str, expected: tuple[list[str], object]) -> None:
    assert parse_override(override) == expected


def test_overrides_change_nested_fields_and_create_missing_mappings(spec_path: Path) -> None:
    spec = load_spec(spec_path, ["method.temperature=4", "training.max_steps=10", "student.layers.1=3"])

    assert spec["method"] == {"type": "response", "temperature": 4}
    assert spec["training"] == {"max_steps": 10}
    assert spec["student"]["layers"] == [0, 3]
    assert spec["teacher"] == {"path": "bert-teacher"}


def test_later_overrides_win(spec_path: Path) -> None:
    spec = load_spec(spec_path, ["training.epochs=1", "training.epochs=2"])

    assert spec["training"]["epochs"] == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.epochs", "expects key.path=value"),
        ("training..epochs=1", "expects key.path=value"),
        ("teacher.path.deeper=1", "teacher.path is a value, not a mapping"),
        ("student.layers.x=1", "indexed by a number"),
        ("student.layers.5=1", "outside the list"),
        ("method.alpha=[1", "not valid YAML"),
    ],
)
def test_a_bad_override_is_a_clear_error(spec_path: Path, override: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        load_spec(spec_path, [override])


def test_a_spec_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")

    with pytest.raises(CliError, match="must hold a mapping"):
        load_spec(path)


def test_a_missing_spec_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="cannot read"):
        load_spec(tmp_path / "absent.yaml")


def test_setting_a_teacher_job_replaces_the_examples_teacher_path(tmp_path: Path) -> None:
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text("teacher:\n  path: teachers/minilm-sentiment\n")

    spec = load_spec(spec_file, ["teacher.job=job_123"])

    assert spec["teacher"] == {"job": "job_123"}
