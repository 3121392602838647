"""The sweep spec: a base job, a search space over its recipe, a budget, an objective and a control.

Every choice and both ends of every range are put into the base spec and validated there, so a search
space the jobs would refuse is a 4xx naming the dimension (`param: search.method.alpha`), never a trial
that fails later.
"""

import copy
import json
import math
import types
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, Field, JsonValue, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from distillery.jobspec.job import JobSpec, StudentSpec, TrainingSpec
from distillery.jobspec.methods import StrictModel
from distillery.jobspec.sweep_presets import PRESET_PREFIX, PRESETS, preset
from distillery.jobspec.text import Text

# The metric each task's checkpoint selection ranks by (the engine's PRIMARY_METRIC), and its direction.
PRIMARY_METRIC: dict[str, tuple[str, "Direction"]] = {
    "sequence_classification": ("accuracy", "maximize"),
    "causal_lm": ("loss", "minimize"),
}
# The eval metrics each task's jobs report (engine/evaluation.py), so an objective names one of them.
EVAL_METRICS = {
    "sequence_classification": ("accuracy", "macro_f1", "loss"),
    "causal_lm": ("loss", "perplexity"),
}
LOWER_IS_BETTER = frozenset({"loss", "perplexity"})
MAX_CHOICES = 64
MAX_DIMENSIONS = 16
Direction = Literal["maximize", "minimize"]
Choice = JsonValue


class Range(StrictModel):
    """A numeric interval: uniform, or uniform in the logarithm (`log`), optionally on a grid (`step`)."""

    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0, description="Only multiples of step above low; needed by grid.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.low > self.high:
            raise PydanticCustomError("param:low", "low must not exceed high")
        if self.log and self.low <= 0:
            raise PydanticCustomError("param:low", "a log range needs low > 0")
        if self.log and self.step is not None:
            raise PydanticCustomError("param:step", "a log range takes no step")
        return self

    def grid(self, *, integer: bool) -> list[float | int]:
        """Every value a grid search tries: low, low + step, ... up to high."""
        step = self.step if self.step is not None else (1 if integer else None)
        if step is None:
            return []
        count = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        values = [self.low + index * step for index in range(count)]
        return [int(round(v)) for v in values] if integer else [round(v, 12) for v in values]


Dimension = Range | list[Choice]


def parse_search(value: Any) -> Any:
    """A preset's space, or the space given, each dimension a Range or a list of choices."""
    if isinstance(value, str):
        space = preset(value.removeprefix(PRESET_PREFIX)) if value.startswith(PRESET_PREFIX) else None
        if space is None:
            known = ", ".join(f"{PRESET_PREFIX}{name}" for name in sorted(PRESETS))
            raise PydanticCustomError(
                "invalid_search",
                "unknown search preset '{value}' (known: {known})",
                {"value": value, "known": known},
            )
        value = space
    if not isinstance(value, dict):
        raise PydanticCustomError("invalid_search", "give a search space (an object) or a preset name")
    return {str(key): _dimension(str(key), dimension) for key, dimension in value.items()}


def _dimension(key: str, value: Any) -> Dimension:
    """One dimension: a range object, or a non-empty list of distinct choices."""
    if isinstance(value, Range | list):
        dimension: Any = value
    elif isinstance(value, dict):
        try:
            return Range.model_validate(value)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or str(first["type"]).removeprefix("param:")
            raise PydanticCustomError(
                f"param:{key}.{field}" if field else f"param:{key}", "{reason}", {"reason": first["msg"]}
            ) from None
    else:
        raise PydanticCustomError(
            f"param:{key}", "give a range {{low, high, log, step}} or a list of choices"
        )
    if isinstance(dimension, list) and not 1 <= len(dimension) <= MAX_CHOICES:
        raise PydanticCustomError(f"param:{key}", f"give 1 to {MAX_CHOICES} choices")
    return dimension  # type: ignore[no-any-return]


SearchSpace = Annotated[dict[str, Dimension], BeforeValidator(parse_search)]


class Budget(StrictModel):
    """How many trials a sweep runs in all, and at once."""

    max_trials: int = Field(12, ge=1, le=1000)
    max_parallel: int = Field(1, ge=1, le=64)


class Objective(StrictModel):
    """The eval metric that ranks trials; default: the task's primary one (accuracy, or the LM's loss)."""

    metric: str | None = Field(None, min_length=1, max_length=64, examples=["accuracy"])
    direction: Direction | None = Field(None, description="Default: minimize loss and perplexity.")


class SweepSpec(StrictModel):
    """A recipe sweep: trials of a base job with parameters drawn from a search space."""

    name: Text | None = Field(None, description="A label shown in lists.")
    base: JobSpec = Field(..., description="The job every trial starts from; its test file is withheld.")
    search: SearchSpace = Field(
        ...,
        description="Dimensions by dotted field (method.*, training.*, student.layers): a range "
        "{low, high, log, step} or a list of choices; or a preset: "
        + ", ".join(f"'{PRESET_PREFIX}{name}'" for name in sorted(PRESETS)),
        examples=[{"method.alpha": {"low": 0.1, "high": 0.9}, "method.divergence": ["forward_kl", "jsd"]}],
    )
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    pruner: Literal["asha", "none"] = Field("asha", description="asha: successive halving on eval metrics.")
    budget: Budget = Field(default_factory=Budget)
    objective: Objective = Field(default_factory=Objective)
    control: Literal["same_init", "base", "none"] = Field(
        "same_init", description="The one control run after selection, on the best trial's recipe."
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds the sampler.")
    metadata: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None = (
        Field(
            None,
            max_length=16,
            description="Up to 16 string pairs (keys up to 64 characters, values up to 512).",
        )
    )

    @model_validator(mode="after")
    def _search_fits_base(self) -> Self:
        known = EVAL_METRICS[self.base.task]
        if self.objective.metric is not None and self.objective.metric not in known:
            raise PydanticCustomError(
                "param:objective.metric",
                "task '{task}' reports the eval metrics {known}; the objective must be one of them",
                {"task": self.base.task, "known": ", ".join(known)},
            )
        space = self.space()
        if not space:
            raise PydanticCustomError("param:search", "the search space needs at least one dimension")
        if len(space) > MAX_DIMENSIONS:
            raise PydanticCustomError("param:search", f"at most {MAX_DIMENSIONS} dimensions")
        for key, dimension in space.items():
            _check_dimension(self.base, key, dimension)
            gridless = isinstance(dimension, Range) and dimension.step is None
            if self.sampler == "grid" and gridless and not is_integer_field(self.base, key):
                raise PydanticCustomError(
                    f"param:search.{key}", "grid search needs choices, or a range with a step"
                )
        if self.control != "none":
            try:
                self.controlled(self.base)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first["loc"]) or str(first["type"]).removeprefix(
                    "param:"
                )
                raise PydanticCustomError(
                    "param:control",
                    "the control '{mode}' does not fit the base job ({where}): {reason}",
                    {"mode": self.control, "where": where, "reason": first["msg"]},
                ) from None
        metric, direction = self.metric()  # stored and shown with its defaults filled in
        self.objective = Objective(metric=metric, direction=direction)
        return self

    def controlled(self, spec: JobSpec) -> JobSpec:
        """A job spec with the sweep's control mode: the spec the one control run is made from."""
        return JobSpec.model_validate({**spec.model_dump(mode="json"), "control": self.control})

    def space(self) -> dict[str, Dimension]:
        """The search space, with any preset resolved."""
        return self.search

    def metric(self) -> tuple[str, Direction]:
        """The objective's metric and direction, defaults filled in."""
        default, default_direction = PRIMARY_METRIC[self.base.task]
        metric = self.objective.metric or default
        if self.objective.direction is not None:
            return metric, self.objective.direction
        if metric == default:
            return metric, default_direction
        return metric, "minimize" if metric in LOWER_IS_BETTER else "maximize"

    def trial_spec(self, params: dict[str, Any]) -> JobSpec:
        """The base job with a trial's parameters, its teacher's outputs cached, and no test file."""
        spec = apply_params(self.base, params)
        data = spec["data"]
        data["test_file"] = None
        spec["control"] = False
        spec["student"]["base"] = None  # read by the control alone
        if spec["training"]["teacher_cache"] != "off" and spec.get("teacher"):
            spec["training"]["teacher_cache"] = "on"
        return JobSpec.model_validate(spec)

    def corner_specs(self) -> list[tuple[str, JobSpec]]:
        """The base job at each choice and each end of each range, by dimension: what the service checks."""
        corners = []
        for key, dimension in self.space().items():
            values = [dimension.low, dimension.high] if isinstance(dimension, Range) else list(dimension)
            for value in values:
                corners.append((key, JobSpec.model_validate(apply_params(self.base, {key: value}))))
        return corners


def apply_params(base: JobSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The base spec as a dict with dotted fields set to the given values."""
    spec = copy.deepcopy(base.model_dump(mode="json"))
    for key, value in params.items():
        section, field = key.split(".", 1)
        spec[section][field] = value
    return spec


def is_integer_field(base: JobSpec, key: str) -> bool:
    """Whether a searchable field holds an int (a range over it draws ints)."""
    return _annotation(base, key) in (int,)


def _annotation(base: JobSpec, key: str) -> Any:
    """The field's type, without Optional."""
    section, _, field = key.partition(".")
    owner: type[BaseModel] = {"method": type(base.method), "training": TrainingSpec, "student": StudentSpec}[
        section
    ]
    annotation = owner.model_fields[field].annotation
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        annotation = members[0] if len(members) == 1 else annotation
    return annotation


def _check_dimension(base: JobSpec, key: str, dimension: Dimension) -> None:
    """A searchable field, a range only over numbers, and every value valid in the base spec."""
    param = f"param:search.{key}"
    section, _, field = key.partition(".")
    owner_fields = {
        "method": type(base.method).model_fields,
        "training": TrainingSpec.model_fields,
    }.get(section, {})
    if key != "student.layers" and (field not in owner_fields or field == "type" and section == "method"):
        raise PydanticCustomError(
            param,
            "'{key}' is not searchable: use a field of method '{method}' or training, or student.layers",
            {"key": key, "method": base.method.type},
        )
    values: list[Any]
    if isinstance(dimension, Range):
        annotation = _annotation(base, key)
        if annotation not in (int, float):
            raise PydanticCustomError(param, "a range needs a numeric field; give a list of choices")
        integer = annotation is int
        if integer and not (float(dimension.low).is_integer() and float(dimension.high).is_integer()):
            raise PydanticCustomError(
                param, "'{key}' holds whole numbers: give whole low and high", {"key": key}
            )
        values = [int(dimension.low), int(dimension.high)] if integer else [dimension.low, dimension.high]
    else:
        values = list(dimension)
        if len({json.dumps(value, sort_keys=True) for value in values}) != len(values):
            raise PydanticCustomError(param, "the choices repeat a value")
    for value in values:
        try:
            JobSpec.model_validate(apply_params(base, {key: value}))
        except ValidationError as error:
            first = error.errors()[0]
            raise PydanticCustomError(
                param,
                "value {value} does not fit the base job: {reason}",
                {"value": json.dumps(value), "reason": first["msg"]},
            ) from None
