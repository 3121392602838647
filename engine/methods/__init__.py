"""The distillation methods: importing this package registers every implementation by its schema."""

from engine.methods import (  # noqa: F401  (each module registers its class)
    attention,
    feature,
    mutual,
    relation,
    response,
    self_distill,
    supervised,
)
from engine.methods.base import Method, MethodContext
from engine.methods.registry import IMPLEMENTATIONS, get_method_class

__all__ = ["IMPLEMENTATIONS", "Method", "MethodContext", "get_method_class"]
