"""The sweep spec: presets that fit their methods, trial specs, grids and the default objective."""

from typing import Any

import pytest
from pydantic import ValidationError

from distillery.jobspec.sweep import SweepSpec
from distillery.jobspec.sweep_presets import PRESETS

CLASSIFIER = {
    "teacher": {"path": "teacher"},
    "data": {"train_file": "file_train", "test_file": "file_test"},
    "method": {"type": "response"},
}
LM = {
    "task": "causal_lm",
    "teacher": {"path": "teacher"},
    "student": {"init": "pretrained", "model": {"path": "student"}},
    "data": {"train_file": "file_train"},
}
PRESET_BASES = {
    "response-classifier": CLASSIFIER,
    "response-lm": {**LM, "method": {"type": "response"}},
    "gkd-lm": {**LM, "method": {"type": "gkd"}},
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_fits_its_method(name: str) -> None:
    spec = SweepSpec.model_validate({"base": PRESET_BASES[name], "search": f"preset:{name}"})

    assert set(spec.space()) == set(PRESETS[name])


def test_a_preset_of_another_method_names_the_dimension_it_lacks() -> None:
    with pytest.raises(ValidationError) as raised:
        SweepSpec.model_validate({"base": CLASSIFIER, "search": "preset:gkd-lm"})

    assert raised.value.errors()[0]["type"] == "param:search.method.beta"


def test_a_trial_reads_the_stored_teacher_outputs_and_never_the_test_file() -> None:
    spec = SweepSpec.model_validate({"base": CLASSIFIER, "search": {"student.layers": [[0, 2], [0, 1, 2]]}})

    trial = spec.trial_spec({"student.layers": [0, 1, 2]})

    assert trial.student.layers == [0, 1, 2]
    assert trial.data.test_file is None
    assert trial.training.teacher_cache == "on"
    off = {**CLASSIFIER, "training": {"teacher_cache": "off"}}
    assert (
        SweepSpec.model_validate({"base": off, "search": {"method.alpha": [0.5]}})
        .trial_spec({"method.alpha": 0.5})
        .training.teacher_cache
        == "off"
    )


@pytest.mark.parametrize(
    ("task_base", "objective", "expected"),
    [
        (CLASSIFIER, {}, ("accuracy", "maximize")),
        ({**LM, "method": {"type": "response"}}, {}, ("loss", "minimize")),
        ({**LM, "method": {"type": "response"}}, {"metric": "perplexity"}, ("perplexity", "minimize")),
        (CLASSIFIER, {"metric": "macro_f1"}, ("macro_f1", "maximize")),
    ],
)
def test_the_objective_defaults_to_the_tasks_primary_eval_metric(
    task_base: dict[str, Any], objective: dict[str, Any], expected: tuple[str, str]
) -> None:
    spec = SweepSpec.model_validate(
        {"base": task_base, "search": {"method.alpha": [0.5]}, "objective": objective}
    )

    assert spec.metric() == expected


def test_grid_search_needs_a_step_on_a_continuous_range() -> None:
    body = {"base": CLASSIFIER, "search": {"method.alpha": {"low": 0.1, "high": 0.9}}, "sampler": "grid"}
    with pytest.raises(ValidationError) as raised:
        SweepSpec.model_validate(body)
    assert raised.value.errors()[0]["type"] == "param:search.method.alpha"

    stepped = {**body, "search": {"method.alpha": {"low": 0.1, "high": 0.9, "step": 0.4}}}
    alpha = SweepSpec.model_validate(stepped).space()["method.alpha"]
    assert alpha.grid(integer=False) == [0.1, 0.5, 0.9]  # type: ignore[union-attr]


def test_a_control_that_does_not_fit_the_base_names_control() -> None:
    supervised = {**CLASSIFIER, "method": {"type": "supervised"}}
    with pytest.raises(ValidationError) as raised:
        SweepSpec.model_validate({"base": supervised, "search": {"training.learning_rate": [1e-4]}})

    assert raised.value.errors()[0]["type"] == "param:control"
    SweepSpec.model_validate(
        {"base": supervised, "search": {"training.learning_rate": [1e-4]}, "control": "none"}
    )
