"""Which engine class implements each method schema: classes register themselves with `@implements`.

A schema has one class, and may have variants that one of its options selects: response KD with
`cross_tokenizer: uld` runs Universal Logit Distillation. The phase runner asks `method_class_for(spec)`
and never names a class.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from distillery.jobspec.methods import METHOD_CLASSES, MethodBase
from engine.methods.base import Method

MethodClass = TypeVar("MethodClass", bound=type[Method])
IMPLEMENTATIONS: dict[type[MethodBase], type[Method]] = {}
# Per schema: (option, value) -> the class that runs a spec whose option has that value.
VARIANTS: dict[type[MethodBase], dict[tuple[str, Any], type[Method]]] = {}


def implements(spec_class: type[MethodBase], **option: Any) -> Callable[[MethodClass], MethodClass]:
    """Register the decorated class for `spec_class`, or its variant `option=value`, with its teacher rule."""
    if len(option) > 1:
        raise TypeError(f"a variant is selected by one option, got {sorted(option)}")

    def register(method_class: MethodClass) -> MethodClass:
        table: dict[Any, type[Method]] = IMPLEMENTATIONS
        key: Any = spec_class
        if option:
            table, key = VARIANTS.setdefault(spec_class, {}), next(iter(option.items()))
        if key in table:
            raise TypeError(f"{spec_class.__name__} {option or ''} is already implemented by {table[key]}")
        method_class.needs_teacher = spec_class.needs_teacher
        table[key] = method_class
        return method_class

    return register


def method_class_for(spec: MethodBase) -> type[Method]:
    """The class that runs `spec`: the variant one of its options selects, else its schema's class."""
    for (name, value), variant in VARIANTS.get(type(spec), {}).items():
        if getattr(spec, name) == value:
            return variant
    return get_method_class(spec.type_name())


def get_method_class(name: str) -> type[Method]:
    """The class that implements `method.type == name` (without the variants its options select)."""
    for spec_class, method_class in IMPLEMENTATIONS.items():
        if spec_class.type_name() == name:
            return method_class
    known = ", ".join(sorted(spec_class.type_name() for spec_class in METHOD_CLASSES))
    raise ValueError(f"unknown method {name!r}; known: {known}")
