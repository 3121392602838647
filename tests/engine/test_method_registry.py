"""One source of truth per method: every schema has an engine class, an example file and a Swagger example."""

from pathlib import Path

import yaml

from app.jobs.endpoints import JOB_EXAMPLES
from distillery.jobspec.methods import METHOD_CLASSES, TASK_METHODS, TEACHER_METHODS, ResponseMethod
from engine.methods import IMPLEMENTATIONS, get_method_class, method_class_for
from engine.methods.registry import VARIANTS
from engine.methods.teacher import TeacherMethod
from engine.methods.uld import UniversalLogitDistillation

EXAMPLES = Path(__file__).resolve().parents[2] / "distillery" / "examples"


def example_types() -> set[str]:
    return {yaml.safe_load(path.read_text())["method"]["type"] for path in EXAMPLES.glob("*.yaml")}


def test_every_method_schema_has_an_engine_class_that_takes_its_teacher_rule() -> None:
    assert set(IMPLEMENTATIONS) == set(METHOD_CLASSES)
    for spec_class, method_class in IMPLEMENTATIONS.items():
        assert get_method_class(spec_class.type_name()) is method_class
        assert method_class.needs_teacher == spec_class.needs_teacher
        assert issubclass(method_class, TeacherMethod) == spec_class.needs_teacher


def test_each_method_type_has_its_module_and_a_class_named_after_its_schema():
    for spec_class, method_class in IMPLEMENTATIONS.items():
        name = spec_class.type_name()
        assert method_class.__name__ == spec_class.__name__.removesuffix("Method") + "Distillation"
        assert method_class.__module__ in {f"engine.methods.{name}", f"engine.methods.{name}_distillation"}


def test_uld_is_the_response_variant_its_cross_tokenizer_option_selects():
    assert {ResponseMethod: {("cross_tokenizer", "uld"): UniversalLogitDistillation}} == VARIANTS
    assert method_class_for(ResponseMethod(cross_tokenizer="uld")) is UniversalLogitDistillation
    assert UniversalLogitDistillation.needs_teacher


def test_every_method_has_an_example_file_and_a_swagger_example() -> None:
    names = {spec_class.type_name() for spec_class in METHOD_CLASSES}
    swagger_types = {example["value"]["method"]["type"] for example in JOB_EXAMPLES.values()}

    assert names <= example_types()
    assert names <= swagger_types


def test_the_task_and_teacher_sets_come_from_the_schemas() -> None:
    assert {spec.type_name() for spec in METHOD_CLASSES if spec.needs_teacher} == TEACHER_METHODS
    for task, names in TASK_METHODS.items():
        assert names == {spec.type_name() for spec in METHOD_CLASSES if task in spec.tasks}
    assert {"supervised", "response", "feature", "mutual"} <= TASK_METHODS["causal_lm"]
