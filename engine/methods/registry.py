"""Which engine class implements each method schema: classes register themselves with `@implements`."""

from collections.abc import Callable
from typing import TypeVar

from distillery.jobspec.methods import METHOD_CLASSES, MethodBase
from engine.methods.base import Method

MethodClass = TypeVar("MethodClass", bound=type[Method])
IMPLEMENTATIONS: dict[type[MethodBase], type[Method]] = {}


def implements(spec_class: type[MethodBase]) -> Callable[[MethodClass], MethodClass]:
    """Register the decorated class as the implementation of `spec_class`; it takes its teacher rule."""

    def register(method_class: MethodClass) -> MethodClass:
        if spec_class in IMPLEMENTATIONS:
            raise TypeError(f"{spec_class.__name__} is already implemented by {IMPLEMENTATIONS[spec_class]}")
        method_class.needs_teacher = spec_class.needs_teacher
        IMPLEMENTATIONS[spec_class] = method_class
        return method_class

    return register


def get_method_class(name: str) -> type[Method]:
    """The class that implements `method.type == name`."""
    for spec_class, method_class in IMPLEMENTATIONS.items():
        if spec_class.type_name() == name:
            return method_class
    known = ", ".join(sorted(spec_class.type_name() for spec_class in METHOD_CLASSES))
    raise ValueError(f"unknown method {name!r}; known: {known}")
